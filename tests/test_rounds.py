"""Iterated rounds: policy samples ranked, the RM retrained, PPO again; human labels close the loop too."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from components.data.io import read_jsonl
from components.loop.labeling import TASKS, LabelsPending, labels_pending
from components.loop.rounds import prepare_round, run_round
from components.loop.samples import NEW_COMPARISONS, comparable, fresh_prompts, publish
from components.params import Params
from components.paths import round_root
from components.stages import STAGES, run_stage

from .conftest import resume_when_paused

ROW_KEYS = {"round", "win_rate_vs_sft", "gold_score", "rm_accuracy_on_new_samples", "kl_to_sft"}


def with_rounds(params: Params, **changes) -> Params:
    return params.model_copy(update={"pipeline": params.pipeline.model_copy(update=changes)})


@pytest.fixture(scope="module")
def project(ppo_root: Path, tiny_params: Params, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rounds") / "project"
    shutil.copytree(ppo_root, root, ignore=shutil.ignore_patterns("mlflow.db", "mlruns", "evaluation", "rounds"))
    STAGES["evaluate"].run(tiny_params, root)
    return root


@pytest.fixture(scope="module")
def round_two(project: Path, tiny_params: Params) -> list[dict]:
    """The rounds stage with two rounds: what the tests below start from."""
    return STAGES["rounds"].run(with_rounds(tiny_params, rounds=2), project)


def test_fresh_prompts_never_repeat_across_rounds(ppo_root: Path) -> None:
    second, third = fresh_prompts(ppo_root / "data", 2, 20, 0), fresh_prompts(ppo_root / "data", 3, 20, 0)
    assert len(second) == 20 and not {p["id"] for p in second} & {p["id"] for p in third}


def test_only_distinct_non_empty_answers_are_compared() -> None:
    prompts = [{"id": "a"}, {"id": "b"}, {"id": "c"}]
    answers = [["x", "y", "x", "", "z"], ["same", "same", ""], ["p", "q"]]
    kept, compared = comparable(prompts, answers)
    assert [p["id"] for p in kept] == ["a", "c"] and compared == [["x", "y", "z"], ["p", "q"]]


def test_rounds_stage_runs_round_two_and_writes_rounds_json(project: Path, tiny_params: Params, round_two) -> None:
    import mlflow

    from components.tracking import configure

    params, rows = with_rounds(tiny_params, rounds=2), round_two
    written = json.loads((project / "artifacts" / "metrics" / "rounds.json").read_text())
    assert [row["round"] for row in written] == [1, 2] and all(ROW_KEYS <= set(row) for row in written)
    assert written[1]["previous_rm_accuracy_on_new_samples"] is not None
    assert written[1]["labeler_noise"] > 0 and 0 <= written[1]["labeler_agreement"] <= 1  # the labeler's, measured
    assert (project / "artifacts" / "rounds" / "rounds.png").stat().st_size > 5000
    sub = round_root(project, 2)
    new = read_jsonl(sub / NEW_COMPARISONS)
    assert new and all(c["round"] == 2 and len(c["completions"]) >= 2 and all(c["completions"]) for c in new)
    data = read_jsonl(sub / "data" / "comparisons.jsonl")
    assert len(data) == len(read_jsonl(project / "data" / "comparisons.jsonl")) + len(new)
    assert (sub / "artifacts" / "models" / "ppo" / "model.safetensors").exists()
    assert (sub / "artifacts" / "models" / "ppo_init").resolve() == (project / "artifacts" / "models" / "ppo").resolve()
    # MLflow: the round is a run under which the round's stages nest.
    configure(project)
    runs = mlflow.search_runs(experiment_names=["instructflow"], output_format="list")
    round_run = next(r for r in runs if r.data.tags.get("instructflow.round") == "2")
    nested = {
        r.data.tags.get("instructflow.stage")
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") == round_run.info.run_id
    }
    assert {"rm", "ppo", "evaluate"} <= nested
    assert round_run.data.tags["data_version"] == rows[1]["data_version"]
    # Run again with the same inputs: the finished round is reused, not sampled or trained again.
    before = (sub / "round.json").stat().st_mtime_ns
    assert run_round(params, project, 2, run_stage) == rows[1]
    assert (sub / "round.json").stat().st_mtime_ns == before
    # The register stage registers the last round's policy.
    assert STAGES["register"].run(params, project)["policy_version"] == 1


def test_a_round_waits_for_human_labels_then_trains_on_them(project: Path, tiny_params: Params, round_two) -> None:
    params = with_rounds(tiny_params, rounds=3, labels="human")
    sub = round_root(project, 3)
    pending = prepare_round(params, project, 3)
    tasks = read_jsonl(sub / TASKS)
    assert pending == len(tasks) > 0 and not (sub / NEW_COMPARISONS).exists()
    with pytest.raises(LabelsPending, match="instructflow label serve --round 3"):
        run_round(params, project, 3, run_stage)
    from components.loop.labeling import import_labels

    finished = sub.parent / "finished.jsonl"
    finished.write_text("".join(json.dumps({"task_id": t["task_id"], "ranks": list(range(1, len(t["answers"]) + 1))})
                                + "\n" for t in tasks))  # fmt: skip
    import_labels(sub, finished, "people")
    assert labels_pending(sub) == 0
    row = run_round(params, project, 3, run_stage)
    assert ROW_KEYS <= set(row) and row["new_comparisons"] == len(tasks)
    assert {c["labeler"] for c in read_jsonl(sub / NEW_COMPARISONS)} == {"people"}


def test_publish_adds_the_rounds_comparisons_to_data_once(project: Path, tmp_path: Path, round_two) -> None:
    copy = tmp_path / "project"
    shutil.copytree(project / "data", copy / "data")
    shutil.copytree(round_root(project, 2), round_root(copy, 2), symlinks=True)
    before = len(read_jsonl(copy / "data" / "comparisons.jsonl"))
    added = publish(copy, 2)
    assert added > 0 and publish(copy, 2) == 0  # a second publish adds nothing
    grown = read_jsonl(copy / "data" / "comparisons.jsonl")
    assert len(grown) == before + added and sum(c.get("round") == 2 for c in grown) == added
    gold = {g["id"] for g in read_jsonl(copy / "data" / "gold.jsonl")}
    assert all(c["id"] in gold for c in grown if c.get("round") == 2)


def test_the_rounds_stage_says_when_labels_are_pending(project: Path, tmp_path: Path, round_two) -> None:
    """`dvc repro` runs `instructflow stage rounds`: pending human labels are a clear exit 1, not a traceback."""
    import subprocess
    import sys

    from .conftest import ROOT, TINY, tool_env

    copy = tmp_path / "project"
    shutil.copytree(project, copy, symlinks=True)
    command = [sys.executable, "-m", "components.cli", "stage", "rounds", "--params", str(ROOT / "params.yaml"),
               "--profile", str(TINY), "--set", "pipeline.rounds=2", "--set", "pipeline.labels=human"]  # fmt: skip
    result = subprocess.run(command, cwd=copy, env=tool_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "await labels" in result.stderr and "instructflow label serve --round" in result.stderr


@pytest.mark.usefixtures("prefect_server")  # flows run here: the session's server
def test_the_round_subflow_pauses_for_human_labels_and_resumes(
    project: Path, tiny_params: Params, round_two, tmp_path: Path
) -> None:
    """pipeline.labels=human: the round's flow run pauses until the labels are in, then finishes the round."""
    import threading

    from components.loop.labeling import import_labels

    copy = tmp_path / "project"
    shutil.copytree(project, copy, symlinks=True, ignore=shutil.ignore_patterns("round-03"))
    params = with_rounds(tiny_params, rounds=3, labels="human")
    sub, resumed = round_root(copy, 3), []

    def labeler() -> bool:
        """Rank every task of the paused round."""
        if not (sub / TASKS).exists():
            return False
        done = tmp_path / "done.jsonl"
        ranked = [{"task_id": t["task_id"], "ranks": list(range(1, len(t["answers"]) + 1))}
                  for t in read_jsonl(sub / TASKS)]  # fmt: skip
        done.write_text("".join(json.dumps(row) + "\n" for row in ranked))
        import_labels(sub, done, "alice")
        return True

    from flows.pipeline import round_flow

    thread = threading.Thread(target=resume_when_paused, args=(labeler, resumed), daemon=True)
    thread.start()
    row = round_flow(3, params, str(copy), None)
    thread.join(timeout=30)
    assert resumed, "the round never paused for labels"
    assert row["round"] == 3 and row["new_comparisons"] == len(read_jsonl(sub / TASKS))
    assert {c["labeler"] for c in read_jsonl(sub / NEW_COMPARISONS)} == {"alice"}
