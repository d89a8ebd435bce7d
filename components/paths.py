"""Where a project keeps things, relative to its root: the one map every stage, flow and test reads.

A round of the feedback loop is a project of its own under ROUNDS, so the same map serves it.
"""

from __future__ import annotations

import json
from pathlib import Path

from components.errors import StageError

DATA = Path("data")
ARTIFACTS = Path("artifacts")
METRICS = ARTIFACTS / "metrics"
SPLITS_DIR = ARTIFACTS / "data"
VALIDATION_DOCS = ARTIFACTS / "validation"
MODELS = ARTIFACTS / "models"
CHECKPOINTS = ARTIFACTS / "checkpoints"  # full training state for resume; not a DVC output
PLOTS = ARTIFACTS / "plots"
EVALUATION = ARTIFACTS / "evaluation"
ROUNDS = ARTIFACTS / "rounds"
CHAMPION_DOWNLOAD = ARTIFACTS / "champion"
PEOPLE = ARTIFACTS / "people"  # blinded evaluation pairs and people's labels: kept across runs, not a DVC output


def round_root(root: Path, r: int) -> Path:
    """The project folder of round r (>= 2) of the feedback loop."""
    return root / ROUNDS / f"round-{r:02d}"


def previous_root(root: Path, r: int) -> Path:
    """The project whose policy round r starts from: the main pipeline for round 2."""
    return root if r == 2 else round_root(root, r - 1)


def final_root(root: Path, rounds: int) -> Path:
    """Where the last round's models and evaluation are: what `register` registers."""
    return root if rounds <= 1 else round_root(root, rounds)


def sft_epochs(root: Path) -> list[Path]:
    return sorted((root / MODELS / "sft").glob("epoch-*"))


def last_sft_epoch(root: Path) -> Path:
    epochs = sft_epochs(root)
    if not epochs:
        raise StageError(f"{root / MODELS / 'sft'}: no SFT checkpoints; run the sft stage first")
    return epochs[-1]


def selected_sft(root: Path) -> Path:
    """The SFT checkpoint select_sft chose (PPO's start and reference)."""
    path = root / METRICS / "select_sft.json"
    if not path.exists():
        raise StageError(f"{path} not found: run the select_sft stage first")
    return root / json.loads(path.read_text(encoding="utf-8"))["selected_path"]
