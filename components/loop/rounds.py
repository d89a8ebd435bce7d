"""Iterated rounds: the policy answers, labelers rank, the reward model retrains, PPO runs again.

Round 1 is the main pipeline. Round r >= 2 lives in its own project folder,
`artifacts/rounds/round-NN/`, so every stage runs there unchanged:

1. the previous round's policy (and, per `pipeline.sources`, SFT and the champion) answers a
   fresh slice of prompts, K = k_min..k_max answers each;
2. the simulated labeler ranks them (or people do: `instructflow label`), giving comparisons
   with a `round` field;
3. the round's data is the project's data plus every round's comparisons so far; it is
   validated and split by user like any data;
4. the reward model retrains on all comparisons (from SFT, as in round 1);
5. PPO starts from the previous round's policy, the reference stays the SFT policy;
6. the round is evaluated like round 1.

The reward model's accuracy on the round's new held-out comparisons (policy samples, which the
round-1 RM never saw) is measured before and after retraining. The stages are run through
`run_stage`, which the stage table passes in: this module runs stages without importing their table.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow

from components.data.io import read_jsonl, write_json
from components.data.validate import data_fingerprint
from components.eval.gold import load_gold
from components.hashing import values_digest
from components.loop.labeling import LabelsPending, labels_pending
from components.loop.samples import LABELER, RoundError, accuracy_on, build_round_data, plot_rounds, sample_and_label
from components.params import Params
from components.paths import DATA, METRICS, MODELS, ROUNDS, SPLITS_DIR, previous_root, round_root
from components.tracking import PARENT_ENV, STORE_ENV, configure, stage_run

RunStage = Callable[[str, Params, Path], dict]  # (stage name, params, project root) -> the stage's metrics


@contextmanager
def round_run(root: Path, r: int) -> Iterator[Callable[[dict], None]]:
    """An MLflow run `round-NN` under the pipeline's parent; the round's stage runs nest inside it.

    Stages in the round folder log to the project's store (INSTRUCTFLOW_MLFLOW_URI), not to one of
    their own. Yields a function that logs the round's numbers on its run.
    """
    saved = {k: os.environ.get(k) for k in (PARENT_ENV, STORE_ENV)}
    client, run_id = None, None
    if os.environ.get("INSTRUCTFLOW_TRACKING", "on") != "off":
        experiment_id = configure(root)
        os.environ[STORE_ENV] = mlflow.get_tracking_uri()
        tags = {"instructflow.round": str(r), "mlflow.runName": f"round-{r:02d}"}
        if saved[PARENT_ENV]:
            tags["mlflow.parentRunId"] = saved[PARENT_ENV]
        client = mlflow.MlflowClient()
        run_id = client.create_run(experiment_id, tags=tags, run_name=f"round-{r:02d}").info.run_id
        os.environ[PARENT_ENV] = run_id
    status = "FAILED"

    def log(row: dict) -> None:
        for key, value in row.items():
            if client and isinstance(value, int | float) and key != "round":
                client.log_metric(run_id, key, float(value))
            elif client and key == "data_version":
                client.set_tag(run_id, "data_version", str(value))  # the round's data, as data_fingerprint hashes it

    try:
        yield log
        status = "FINISHED"
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
        if client:
            client.set_terminated(run_id, status)


def round_key(params: Params, root: Path, r: int) -> str:
    """What round r depends on: all params, the project's data, the policy it starts from."""
    previous = previous_root(root, r) / MODELS / "ppo"
    return values_digest(params.model_dump(mode="json"), data_fingerprint(root / DATA), r, previous)


def done_round(root: Path, r: int, key: str) -> dict | None:
    """Round r's row when it finished with exactly the inputs KEY names, else None."""
    path = round_root(root, r) / "round.json"
    if not path.exists():
        return None
    row = json.loads(path.read_text(encoding="utf-8"))
    return row if row.get("key") == key else None


def prepare_round(params: Params, root: Path, r: int) -> int:
    """Sample (and, with simulated labels, rank) round r's answers without training; returns tasks pending."""
    sub = claim_folder(root, r, round_key(params, root, r))
    try:
        sample_and_label(params, root, r)
    except LabelsPending:
        pass
    return labels_pending(sub)


def claim_folder(root: Path, r: int, key: str) -> Path:
    """Round r's folder for the inputs KEY names: one made from other inputs is removed first; one from
    the same inputs keeps its sampled and labelled comparisons, so a crashed round resumes without sampling."""
    sub = round_root(root, r)
    if (sub / "key").exists() and (sub / "key").read_text() != key:
        shutil.rmtree(sub)
    sub.mkdir(parents=True, exist_ok=True)
    (sub / "key").write_text(key)
    return sub


def run_round(params: Params, root: Path, r: int, run_stage: RunStage) -> dict:
    """Round r (>= 2) end to end in artifacts/rounds/round-NN; returns its row of rounds.json."""
    if r < 2:
        raise RoundError("round 1 is the main pipeline; rounds start at 2")
    key = round_key(params, root, r)  # hashes the data and the policy it starts from: once
    if (row := done_round(root, r, key)) is not None:
        return row
    sub = claim_folder(root, r, key)
    with round_run(root, r) as log:
        row = round_stages(params, root, r, sub, run_stage)
        log(row)
    row["key"] = key
    write_json(sub / "round.json", row)
    return row


def round_stages(params: Params, root: Path, r: int, sub: Path, run_stage: RunStage) -> dict:
    new = sample_and_label(params, root, r)
    build_round_data(root, sub, r, new)
    for name in ("validate", "prepare", "rm"):
        run_stage(name, params, sub)
    test_ids = {c["id"] for c in read_jsonl(sub / SPLITS_DIR / "test" / "comparisons.jsonl")}
    held_out = [c for c in new if c["id"] in test_ids]
    context, gold = params.model.context, load_gold(sub / DATA)
    before = accuracy_on(previous_root(root, r) / MODELS / "rm", held_out, gold, context)
    after = accuracy_on(sub / MODELS / "rm", held_out, gold, context)
    run_stage("ppo", params, sub)
    evaluation = run_stage("evaluate", params, sub)
    row = round_row(r, evaluation, after["accuracy"])
    row.update({"previous_rm_accuracy_on_new_samples": before["accuracy"],
                "rm_gold_accuracy_on_new_samples": after["gold_accuracy"],
                "previous_rm_gold_accuracy_on_new_samples": before["gold_accuracy"], "new_comparisons": len(new),
                "held_out_new_comparisons": len(held_out), "data_version": data_fingerprint(sub / DATA)})  # fmt: skip
    if (sub / LABELER).exists():  # simulated labels (people's have no calibration)
        row.update({k: v for k, v in json.loads((sub / LABELER).read_text(encoding="utf-8")).items() if k != "pairs"})
    return row


def round_row(r: int, evaluation: dict, rm_accuracy: float | None) -> dict:
    return {
        "round": r,
        "win_rate_vs_sft": evaluation["win_rate_vs_sft"]["ppo"],
        "gold_score": evaluation["gold_score"]["ppo"],
        "rm_accuracy_on_new_samples": rm_accuracy,
        "kl_to_sft": evaluation["kl_to_sft"]["ppo"],
    }


def first_round(root: Path) -> dict:
    """Round 1 as the main pipeline measured it (its RM judged on its own held-out comparisons)."""
    metrics = root / METRICS
    evaluation = json.loads((metrics / "evaluate.json").read_text(encoding="utf-8"))
    rm = json.loads((metrics / "rm.json").read_text(encoding="utf-8"))
    return round_row(1, evaluation, rm["accuracy"])


def run_rounds(params: Params, root: Path, run_stage: RunStage) -> list[dict]:
    """The `rounds` stage: rounds 2..N (a round finished on the same inputs is reused), rounds.json, its plot."""
    rows = [first_round(root)] + [run_round(params, root, r, run_stage) for r in range(2, params.pipeline.rounds + 1)]
    plot = plot_rounds(rows, root / ROUNDS / "rounds.png")
    with stage_run("rounds", {"pipeline": params.pipeline.model_dump()}, root) as summary:
        for row in rows:
            summary.log(
                {k: v for k, v in row.items() if k != "round" and isinstance(v, int | float)}, step=row["round"]
            )
        summary.log_artifact(plot, "rounds")
    return rows
