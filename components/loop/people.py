"""People as a judge: blinded A/B pairs of PPO's answer and the reference's, ranked on the labeling page.

With `evaluate.people: true`, evaluation writes one task per test prompt whose two answers differ
into PEOPLE/<key>/tasks.jsonl, the round-task format (components/loop/labeling.py), so the page
(`instructflow label serve --evaluate`), `label export --evaluate` and `label import --evaluate`
serve them as they serve a round's. The two answers are in a seeded random order and the page
never shows which model wrote which: the task's `models` field stays on disk. <key> digests the
pairs, so labels always belong to the answers they judged; PEOPLE/current names the live folder.
Until every task is ranked, people are "pending" and evaluation judges without them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Callable
from pathlib import Path

from components.data.io import atomic_path, read_jsonl, write_jsonl
from components.loop.labeling import TASKS, comparisons, labels_pending
from components.paths import PEOPLE

CURRENT = "current"
logger = logging.getLogger(__name__)


def pairs_key(records: list[dict], first: list[str], second: list[str]) -> str:
    digest = hashlib.sha256()
    for r, a, b in zip(records, first, second, strict=True):
        digest.update(json.dumps([r["id"], a, b]).encode())
    return digest.hexdigest()[:16]


def write_pairs(people: Path, records: list[dict], ppo: list[str], reference: list[str], name: str) -> Path:
    """The folder of this evaluation's pairs: made (tasks written) the first time, kept as it is after."""
    folder = people / pairs_key(records, ppo, reference)
    if not (folder / TASKS).exists():
        tasks = []
        for i, (r, a, b) in enumerate(zip(records, ppo, reference, strict=True)):
            if a == b:
                continue  # the same text: a tie, nothing to ask
            models = ["ppo", name]
            random.Random(f"{folder.name}-{i}").shuffle(models)
            answers = [a if m == "ppo" else b for m in models]
            tasks.append({"task_id": f"eval-{i:06d}", "round": 0, "prompt_id": r["id"], "user_id": r["user_id"],
                          "category": r["category"], "messages": r["messages"], "answers": answers,
                          "models": models, "prompt_index": i, "ties_allowed": True})  # fmt: skip
        folder.mkdir(parents=True, exist_ok=True)
        write_jsonl(folder / TASKS, tasks)
    with atomic_path(people / CURRENT) as tmp:
        tmp.write_text(folder.name + "\n", encoding="utf-8")
    return folder


def current(people: Path) -> Path | None:
    """The folder of the latest evaluation's pairs (what `label serve --evaluate` serves)."""
    pointer = people / CURRENT
    return people / pointer.read_text(encoding="utf-8").strip() if pointer.exists() else None


def people_judge(root: Path) -> Callable[[list[dict], list[str], list[str], str], tuple[list[float] | None, dict]]:
    """What evaluation calls with the test records and both answers: people's verdicts and where they stand."""

    def judge(records: list[dict], ppo: list[str], reference: list[str], name: str) -> tuple[list[float] | None, dict]:
        folder = write_pairs(root / PEOPLE, records, ppo, reference, name)
        pending, tasks = labels_pending(folder), len(read_jsonl(folder / TASKS))
        if pending:
            logger.warning("people: %d of %d pairs await labels: instructflow label serve --evaluate", pending, tasks)
        info = {"folder": str(folder.relative_to(root)), "tasks": tasks, "pending": pending}
        return preferences(folder, len(records)), info

    return judge


def preferences(folder: Path, n_prompts: int) -> list[float] | None:
    """Per test prompt, people's preference for PPO's answer (ties half); None while tasks are pending."""
    if labels_pending(folder):
        return None
    tasks = {t["task_id"]: t for t in read_jsonl(folder / TASKS)}
    prefs = [0.5] * n_prompts  # identical answers tie
    for c in comparisons(folder):
        task = tasks[c["id"].removeprefix("cmp-")]
        ppo = task["models"].index("ppo")
        ranks = c["ranks"]
        prefs[task["prompt_index"]] = 1.0 if ranks[ppo] < ranks[1 - ppo] else 0.5 if ranks[0] == ranks[1] else 0.0
    return prefs
