"""The toy world's gold grader over files: specs from data/gold.jsonl, looked up by record id.

Only evaluation-type code calls this (metrics, checkpoint reports); no trainer reads it.
Imported data has no gold file: then every gold figure is None.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from components.data.io import read_jsonl
from components.world.grader import grade

GOLD_FILE = "gold.jsonl"


def load_gold(data: Path) -> dict[str, dict] | None:
    path = data / GOLD_FILE
    return {g["id"]: g for g in read_jsonl(path)} if path.exists() else None


def gold_scores(gold: dict[str, dict] | None, records: Sequence[dict], answers: Sequence[str]) -> list[float] | None:
    """Gold score of each answer to each record's prompt, or None without gold for all of them."""
    if gold is None or any(r["id"] not in gold for r in records):
        return None
    return [grade(gold[r["id"]], a).score for r, a in zip(records, answers, strict=True)]
