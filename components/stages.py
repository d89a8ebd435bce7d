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

from components.data.io import write_json
from components.data.schema import KINDS
from components.params import Params

DATA = Path("data")
ARTIFACTS = Path("artifacts")
METRICS = ARTIFACTS / "metrics"
SPLITS_DIR = ARTIFACTS / "data"
VALIDATION_DOCS = ARTIFACTS / "validation"
MODELS = ARTIFACTS / "models"
CHECKPOINTS = ARTIFACTS / "checkpoints"  # full training state for resume; not a DVC output


class StageError(RuntimeError):
    """A stage refused to run or failed in a way the user must act on (exit code 1)."""


Body = Callable[[Params, Path, "object"], dict]  # (params, project root, tracker) -> metrics


@dataclass(frozen=True)
class Stage:
    name: str
    body: Body
    deps: tuple[str, ...]
    outs: tuple[str, ...]
    params: tuple[str, ...]  # params.yaml sections
    trains: bool = False  # a training stage: MLflow run, may run under `accelerate launch`
    tracked: bool = False  # an MLflow run without `accelerate launch` (evaluate, register)
    writes_metrics: bool = False  # an untracked stage whose return value is its metrics file (rounds)

    @property
    def metrics(self) -> str:
        return str(METRICS / f"{self.name}.json")

    def run(self, params: Params, root: Path) -> dict:
        """Run the stage in this process and write its metrics file (main process only)."""
        from components.tracking import Tracker, is_main_process, stage_run

        if not (self.trains or self.tracked):
            metrics = self.body(params, root, Tracker(active=False))
            if self.writes_metrics:
                write_json(root / self.metrics, metrics)
            return metrics
        from components.train.launch import inside_launch, launch

        if self.trains and params.resources.num_processes > 1 and not inside_launch():
            return launch(self.name, params, root, root / self.metrics)
        tree = params.model_dump(by_alias=True)
        with stage_run(self.name, {k: tree[k] for k in self.params}, root) as tracker:
            metrics = self.body(params, root, tracker)
            tracker.log({k: v for k, v in metrics.items() if isinstance(v, int | float)})
            if is_main_process():
                write_json(root / self.metrics, metrics)
                tracker.log_artifact(root / self.metrics)
        return metrics


def data_fingerprint(data: Path) -> str:
    """md5 over the native files' names and bytes: ties a validation result to the data it saw."""
    digest = hashlib.md5()
    for name in sorted(KINDS.values()):
        if (data / name).exists():
            digest.update(name.encode())
            digest.update(hashlib.md5((data / name).read_bytes()).digest())
    return digest.hexdigest()


def validate_and_record(params: Params, data: Path, docs: Path, metrics_path: Path):
    """Validate DATA; the metrics file also records which bytes passed (what prepare checks)."""
    from components.data.validate import run_validate

    report = run_validate(params.validate_, data, docs, metrics_path)
    write_json(metrics_path, {**report.to_metrics(), "data_fingerprint": data_fingerprint(data)})
    return report


def validate_body(params: Params, root: Path, tracker: object) -> dict:
    metrics_path = root / METRICS / "validate.json"
    report = validate_and_record(params, root / DATA, root / VALIDATION_DOCS, metrics_path)
    metrics = {**report.to_metrics(), "data_fingerprint": data_fingerprint(root / DATA)}
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


def prepare_body(params: Params, root: Path, tracker: object) -> dict:
    from components.data.prepare import run_prepare

    require_valid(root)
    metrics = run_prepare(params.prepare, params.validate_, root / DATA, root / SPLITS_DIR)
    write_json(root / METRICS / "prepare.json", metrics)
    return metrics


def pretrain_body(params: Params, root: Path, tracker) -> dict:
    from components.train.pretrain import run_pretrain

    return run_pretrain(params, root / SPLITS_DIR, root / MODELS / "base", root / CHECKPOINTS / "pretrain", tracker)


def sft_body(params: Params, root: Path, tracker) -> dict:
    from components.train.sft import run_sft

    return run_sft(
        params, root / DATA, root / SPLITS_DIR, root / MODELS / "base", root / MODELS / "sft",
        root / CHECKPOINTS / "sft", tracker,
    )  # fmt: skip


def last_sft_epoch(root: Path) -> Path:
    epochs = sorted((root / MODELS / "sft").glob("epoch-*"))
    if not epochs:
        raise StageError(f"{root / MODELS / 'sft'}: no SFT checkpoints; run the sft stage first")
    return epochs[-1]


def rm_body(params: Params, root: Path, tracker) -> dict:
    from components.train.rm import run_rm

    init = last_sft_epoch(root) if params.rm.init == "sft" else root / MODELS / "base"
    return run_rm(
        params, root / DATA, root / SPLITS_DIR, init, root / MODELS / "rm", root / CHECKPOINTS / "rm", tracker
    )


def select_sft_body(params: Params, root: Path, tracker) -> dict:
    from components.train.select_sft import run_select_sft

    metrics = run_select_sft(
        params, root / DATA, root / SPLITS_DIR, root / MODELS / "sft", root / MODELS / "rm", tracker
    )
    metrics["selected_path"] = str(MODELS / "sft" / metrics["selected"])  # relative: the project may move
    return metrics


def selected_sft(root: Path) -> Path:
    path = root / METRICS / "select_sft.json"
    if not path.exists():
        raise StageError(f"{path} not found: run the select_sft stage first")
    return root / json.loads(path.read_text(encoding="utf-8"))["selected_path"]


def ppo_body(params: Params, root: Path, tracker) -> dict:
    from components.train.ppo import run_ppo

    init = root / MODELS / "ppo_init"  # a later round starts from the previous round's policy
    return run_ppo(
        params, root / DATA, root / SPLITS_DIR, selected_sft(root), root / MODELS / "rm", root / MODELS / "ppo",
        root / CHECKPOINTS / "ppo", root / ARTIFACTS / "plots", tracker, init=init if init.exists() else None,
    )  # fmt: skip


EVALUATION = ARTIFACTS / "evaluation"
ROUNDS = ARTIFACTS / "rounds"


def evaluate_body(params: Params, root: Path, tracker) -> dict:
    from components.eval.evaluate import run_evaluate
    from components.registry import champion

    models = {name: (root / MODELS / name,) * 2 for name in ("base", "ppo")}
    models["sft"] = (selected_sft(root),) * 2
    current = champion(root, params.promotion, root / ARTIFACTS / "champion")
    if current is not None:
        models["champion"] = (current.weights, current.tokenizer)
    models = {k: models[k] for k in ("base", "sft", "ppo", "champion") if k in models}
    reference = "champion" if current is not None else "sft"
    return run_evaluate(params, root, models, root / MODELS / "rm", reference, root / EVALUATION, tracker)


def rounds_body(params: Params, root: Path, tracker) -> list[dict]:
    from components.loop.rounds import rounds_body as run_rounds

    return run_rounds(params, root, tracker)


def register_body(params: Params, root: Path, tracker) -> dict:
    from components.loop.rounds import final_root
    from components.registry import register

    if not tracker.active:
        raise StageError("register needs MLflow tracking: unset INSTRUCTFLOW_TRACKING=off")
    final = final_root(root, params.pipeline.rounds)  # the last round's policy, reward model and evaluation
    path = final / METRICS / "evaluate.json"
    if not path.exists():
        raise StageError(f"{path} not found: run the evaluate (and rounds) stages first")
    evaluation = json.loads(path.read_text(encoding="utf-8"))
    result = register(params, root, final / MODELS / "ppo", final / MODELS / "rm", evaluation)
    decision = "promoted to champion" if result["promoted"] else "stays candidate"
    tracker.log_text("\n".join([f"{result['policy_uri']}: {decision}", *result["promotion_reasons"]]), "promotion.txt")
    return result


SPLIT_FILES = str(SPLITS_DIR)
STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage(
            "validate",
            validate_body,
            deps=(str(DATA), "components/data/validate.py"),
            outs=(str(VALIDATION_DOCS),),
            params=("validate",),
        ),
        Stage(
            "prepare",
            prepare_body,
            deps=(str(DATA), str(METRICS / "validate.json"), "components/data/prepare.py"),
            outs=(SPLIT_FILES,),
            params=("prepare", "validate"),
        ),
        Stage(
            "pretrain",
            pretrain_body,
            deps=(
                SPLIT_FILES,
                "components/train/pretrain.py",
                "components/models/model.py",
                "components/train/core.py",
            ),
            outs=(str(MODELS / "base"),),
            params=("model", "pretrain", "resources"),
            trains=True,
        ),
        Stage(
            "sft",
            sft_body,
            deps=(SPLIT_FILES, str(MODELS / "base"), "components/train/sft.py", "components/train/core.py"),
            outs=(str(MODELS / "sft"),),
            params=("sft", "resources"),
            trains=True,
        ),
        Stage(
            "rm",
            rm_body,
            deps=(
                SPLIT_FILES,
                str(MODELS / "sft"),
                str(MODELS / "base"),
                "components/train/rm.py",
                "components/train/core.py",
            ),
            outs=(str(MODELS / "rm"),),
            params=("rm", "resources"),
            trains=True,
        ),
        Stage(
            "select_sft",
            select_sft_body,
            deps=(SPLIT_FILES, str(MODELS / "sft"), str(MODELS / "rm"), "components/train/select_sft.py"),
            outs=(),
            params=("select_sft",),
            trains=True,
        ),
        Stage(
            "ppo",
            ppo_body,
            deps=(
                SPLIT_FILES,
                str(MODELS / "sft"),
                str(MODELS / "rm"),
                str(METRICS / "select_sft.json"),
                "components/train/ppo.py",
                "components/train/ppo_math.py",
            ),
            outs=(str(MODELS / "ppo"), str(ARTIFACTS / "plots")),
            params=("ppo", "resources"),
            trains=True,
        ),
        Stage(
            "evaluate",
            evaluate_body,
            deps=(
                SPLIT_FILES,
                str(MODELS / "base"),
                str(MODELS / "sft"),
                str(MODELS / "rm"),
                str(MODELS / "ppo"),
                str(METRICS / "select_sft.json"),
                "components/eval/evaluate.py",
                "components/eval/report.py",
            ),
            outs=(str(EVALUATION),),
            params=("evaluate", "promotion"),
            tracked=True,
        ),
        Stage(
            "rounds",
            rounds_body,
            deps=(
                str(DATA),
                str(MODELS / "rm"),
                str(MODELS / "ppo"),
                str(METRICS / "evaluate.json"),
                "components/loop/rounds.py",
            ),
            outs=(str(ROUNDS),),
            params=("pipeline",),
            writes_metrics=True,
        ),
        Stage(
            "register",
            register_body,
            deps=(
                str(MODELS / "rm"),
                str(MODELS / "ppo"),
                str(METRICS / "evaluate.json"),
                str(METRICS / "rounds.json"),
                "components/registry.py",
            ),
            outs=(),
            params=("promotion", "pipeline"),
            tracked=True,
        ),
    )
}
