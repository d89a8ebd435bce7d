"""The one list of pipeline stages: what each reads, writes and which params it uses.

`dvc.yaml`, the CLI (`instructflow stage NAME`) and the flows all follow this table;
tests/test_dvc.py checks dvc.yaml against it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from components.io import write_json
from components.params import Params
from components.schema import KINDS

DATA = Path("data")
ARTIFACTS = Path("artifacts")
METRICS = ARTIFACTS / "metrics"
SPLITS_DIR = ARTIFACTS / "data"
VALIDATION_DOCS = ARTIFACTS / "validation"


class StageError(RuntimeError):
    """A stage refused to run or failed in a way the user must act on (exit code 1)."""


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[Params, Path], dict]  # (params, project root) -> metrics
    deps: tuple[str, ...]
    outs: tuple[str, ...]
    params: tuple[str, ...]  # params.yaml sections

    @property
    def metrics(self) -> str:
        return str(METRICS / f"{self.name}.json")


def data_fingerprint(data: Path) -> str:
    """md5 over the native files' names and bytes: ties a validation result to the data it saw."""
    digest = hashlib.md5()
    for name in sorted(KINDS.values()):
        if (data / name).exists():
            digest.update(name.encode())
            digest.update(hashlib.md5((data / name).read_bytes()).digest())
    return digest.hexdigest()


def run_validate_stage(params: Params, root: Path) -> dict:
    from components.validate import run_validate

    metrics_path = root / METRICS / "validate.json"
    report = run_validate(params.validate_, root / DATA, root / VALIDATION_DOCS, metrics_path)
    metrics = {**report.to_metrics(), "data_fingerprint": data_fingerprint(root / DATA)}
    write_json(metrics_path, metrics)
    if not report.success:
        raise StageError(f"validation failed: nothing downstream runs on this data\n{report.format()}")
    return metrics


def require_valid(root: Path) -> None:
    """Refuse to go on unless the last validation passed on exactly the data now in data/."""
    path = root / METRICS / "validate.json"
    if not path.exists():
        raise StageError(f"{path} not found: run `instructflow validate` (the validate stage) first")
    result = json.loads(path.read_text(encoding="utf-8"))
    if not result.get("success"):
        raise StageError(f"{path}: the last validation failed; fix the data and validate again")
    if result.get("data_fingerprint") != data_fingerprint(root / DATA):
        raise StageError(f"{root / DATA} changed since it was validated: run the validate stage again")


def run_prepare_stage(params: Params, root: Path) -> dict:
    from components.prepare import run_prepare

    require_valid(root)
    metrics = run_prepare(params.prepare, params.validate_, root / DATA, root / SPLITS_DIR)
    write_json(root / METRICS / "prepare.json", metrics)
    return metrics


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage(
            "validate",
            run_validate_stage,
            deps=(str(DATA), "components/validate.py"),
            outs=(str(VALIDATION_DOCS),),
            params=("validate",),
        ),
        Stage(
            "prepare",
            run_prepare_stage,
            deps=(str(DATA), str(METRICS / "validate.json"), "components/prepare.py"),
            outs=(str(SPLITS_DIR),),
            params=("prepare", "validate"),
        ),
    )
}
