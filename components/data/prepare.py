"""The `prepare` stage: split every native file by user_id into train/valid/test.

As in the paper, no user's prompts land in two splits. The split of a user is a pure
function of (seed, user_id), so it is the same across files, runs and machines, and a
user's records added later (a new labeling round) join the same split.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from pathlib import Path

from components.data.io import atomic_path, read_jsonl, write_jsonl
from components.data.schema import CORPUS, KINDS, SPLITS
from components.data.validate import run_validate
from components.errors import StageError
from components.params import PrepareParams, ValidateParams

logger = logging.getLogger(__name__)


def split_of(key: str, params: PrepareParams) -> str:
    """train, valid or test for a user id (or a corpus document id), from a seeded hash."""
    digest = hashlib.sha256(f"{params.seed}:{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < params.train:
        return "train"
    return "valid" if u < params.train + params.valid else "test"


def record_key(filename: str, record: dict) -> str:
    """Corpus text has no user: its documents are split by id."""
    return record["id"] if filename == CORPUS else record["user_id"]


def corpus_texts(splits: Path, split: str) -> list[str]:
    """The corpus texts of one split; none when the project has no corpus (its own data may not).

    Every corpus-dependent step (SFT's corpus blocks, PPO's ptx term, perplexity) then does
    without; `prepare` says so once.
    """
    path = splits / split / CORPUS
    return [r["text"] for r in read_jsonl(path)] if path.exists() else []


NO_CORPUS = (
    "no corpus.jsonl: SFT and PPO train without corpus blocks (no ptx term) and the alignment tax "
    "(perplexity) is not measured; `instructflow data import text DOCS --kind corpus` brings one in"
)


def check_filled(path: Path, parts: dict[str, list[dict]], params: PrepareParams) -> None:
    """Every split with a share of the data gets some of this file, or the user hears why not."""
    empty = [s for s in SPLITS if getattr(params, s) > 0 and not parts[s]]
    if not empty:
        return
    records = [r for part in parts.values() for r in part]
    groups = {record_key(path.name, r) for r in records}
    unit = "documents" if path.name == CORPUS else "users"
    shares = ", ".join(f"{s} ({getattr(params, s):.0%})" for s in empty)
    raise StageError(
        f"{path}: its {len(records)} records belong to {len(groups)} {unit}, and the split by {unit[:-1]} left "
        f"{shares} without any. Each {unit[:-1]} stays in one split, so this file needs more {unit}; "
        "imported rows without a user_id are dealt to users of 200 prompts each (or try other prepare fractions)"
    )


def run_prepare(params: PrepareParams, checks: ValidateParams, data: Path, out: Path) -> dict:
    """Write OUT/{train,valid,test}/<file> for each native file in DATA; return counts.

    The splits are validated (no user or prompt text in two splits, every rule per file)
    before they are renamed into place; their Data Docs go to OUT/validation.
    """
    files = [name for name in KINDS.values() if (data / name).exists()]
    if not files:
        raise StageError(f"{data}: none of {', '.join(KINDS.values())} found")
    counts: dict[str, dict[str, int]] = {}
    users: dict[str, set[str]] = {s: set() for s in SPLITS}
    with atomic_path(out) as tmp:
        for name in files:
            parts: dict[str, list[dict]] = {s: [] for s in SPLITS}
            for record in read_jsonl(data / name):
                split = split_of(record_key(name, record), params)
                parts[split].append(record)
                if name != CORPUS:
                    users[split].add(record["user_id"])
            check_filled(data / name, parts, params)
            for split, records in parts.items():
                write_jsonl(tmp / split / name, records)
            counts[name] = dict(Counter({s: len(r) for s, r in parts.items()}))
        report = run_validate(checks, tmp, tmp / "validation", tmp / "validation" / "validate.json")
        if not report.success:
            raise StageError(f"the splits failed validation, nothing was written to {out}\n{report.format()}")
    metrics = {"records": counts, "users": {s: len(u) for s, u in users.items()}, "splits_valid": report.success}
    if CORPUS not in files:
        logger.warning(NO_CORPUS)
        metrics["notes"] = [NO_CORPUS]
    return metrics
