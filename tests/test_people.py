"""People as a judge: blinded pairs, their labels as a win rate, and the flow waiting for them."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

from components.data.io import read_jsonl, write_jsonl
from components.loop.label_server import create_app
from components.loop.labeling import TASKS, export_pending, import_labels, labels_pending
from components.loop.people import current, preferences, write_pairs
from components.params import Params
from components.paths import PEOPLE

from .conftest import resume_when_paused

RECORDS = [{"id": f"p{i}", "user_id": "u", "category": "Chat", "messages": [{"role": "user", "content": f"q{i}"}]}
           for i in range(4)]  # fmt: skip


def ranked(folder: Path, prefer_ppo: list[bool | None], out: Path) -> Path:
    """Labels as another tool would give them: PPO's answer first (True), second (False) or a tie (None)."""
    rows = []
    for task, wish in zip(read_jsonl(folder / TASKS), prefer_ppo, strict=True):
        ppo = task["models"].index("ppo")
        ranks = [1, 1] if wish is None else [1, 2] if (ppo == 0) == wish else [2, 1]
        rows.append({"task_id": task["task_id"], "ranks": ranks})
    write_jsonl(out, rows)
    return out


def test_pairs_are_blinded_and_labels_become_preferences_for_ppo(tmp_path: Path) -> None:
    people = tmp_path / "people"
    ppo, sft = ["a", "same", "c", "d"], ["x", "same", "y", "z"]
    folder = write_pairs(people, RECORDS, ppo, sft, "sft")
    assert current(people) == folder and write_pairs(people, RECORDS, ppo, sft, "sft") == folder  # kept as it is
    tasks = read_jsonl(folder / TASKS)
    assert len(tasks) == 3  # the identical answers are a tie without asking
    assert {tuple(t["models"]) for t in tasks} == {("ppo", "sft"), ("sft", "ppo")}  # both orders occur
    exported = tmp_path / "pending.jsonl"
    assert export_pending(folder, exported) == 3
    assert all("models" not in t for t in read_jsonl(exported))  # another tool sees no model names
    from fastapi.testclient import TestClient

    page = TestClient(create_app(folder), base_url="http://127.0.0.1")  # a loopback Host, as a browser sends
    view = page.get("/api/next", params={"labeler": "ann"}).json()["task"]
    assert "models" not in view and {a["text"] for a in view["answers"]} <= {"a", "x", "c", "y", "d", "z"}
    assert preferences(folder, 4) is None and labels_pending(folder) == 3
    import_labels(folder, ranked(folder, [True, False, None], tmp_path / "done.jsonl"), "ann")
    assert preferences(folder, 4) == [1.0, 0.5, 0.0, 0.5]


@pytest.mark.usefixtures("prefect_server")  # flows run here: the session's server
def test_the_people_flow_pauses_until_the_pairs_are_ranked_then_evaluates_with_them(
    ppo_root: Path, tiny_params: Params, tmp_path: Path
) -> None:
    from components.stages import STAGES

    root = tmp_path / "project"
    shutil.copytree(ppo_root / "data", root / "data")
    shutil.copytree(ppo_root / "artifacts", root / "artifacts", ignore=shutil.ignore_patterns("evaluation", "people"))
    ppo = root / "artifacts" / "models" / "ppo"  # the tiny PPO may answer as SFT does: a policy that differs
    shutil.rmtree(ppo)
    shutil.copytree(root / "artifacts" / "models" / "base", ppo)
    update = {"evaluate": tiny_params.evaluate.model_copy(update={"people": True})}
    params = tiny_params.model_copy(update=update)
    first = STAGES["evaluate"].run(params, root)
    assert "people" not in first["judges"] and first["people"]["pending"] == first["people"]["tasks"] > 0
    folder, resumed = current(root / PEOPLE), []

    def person() -> bool:
        tasks = read_jsonl(folder / TASKS)
        import_labels(folder, ranked(folder, [True] * len(tasks), tmp_path / "done.jsonl"), "ann")
        return True

    from flows.pipeline import people_flow

    thread = threading.Thread(target=resume_when_paused, args=(person, resumed), daemon=True)
    thread.start()
    evaluation = people_flow(params, str(root), None)
    thread.join(timeout=30)
    assert resumed, "the flow never paused for people"
    rate = evaluation["judges"]["people"]["win_rate_vs_reference"]
    same = evaluation["prompts"] - first["people"]["tasks"]
    assert rate["value"] == pytest.approx((first["people"]["tasks"] + 0.5 * same) / evaluation["prompts"])
    written = json.loads((root / "artifacts" / "metrics" / "evaluate.json").read_text())
    assert written["judges"]["people"] == evaluation["judges"]["people"] and written["people"]["pending"] == 0
    assert evaluation["promotion_reasons"][0].split(": ", 1)[1].startswith("gold win rate")  # gold outranks people
