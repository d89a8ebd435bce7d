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
round-1 RM never saw) is measured before and after retraining.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from components.data.io import read_jsonl, write_json, write_jsonl
from components.params import Params
from components.stages import ROUNDS, StageError, data_fingerprint
from components.tracking import PARENT_ENV, STORE_ENV, configure

NEW_COMPARISONS = "new_comparisons.jsonl"
LABELER = "labeler.json"  # the simulated labeler's noise and measured agreement on a round's answers


class RoundError(StageError):
    """A round cannot run (no labels yet, no labeler calibration, a missing previous round)."""


def round_root(root: Path, r: int) -> Path:
    return root / "artifacts" / "rounds" / f"round-{r:02d}"


def previous_root(root: Path, r: int) -> Path:
    return root if r == 2 else round_root(root, r - 1)


def fresh_prompts(data: Path, r: int, n: int, seed: int) -> list[dict]:
    """Round r's slice of a seeded shuffle of the prompts: no prompt is asked in two rounds."""
    prompts = read_jsonl(data / "prompts.jsonl")
    random.Random(f"rounds-{seed}").shuffle(prompts)
    start = (r - 2) * n
    if start >= len(prompts):
        raise RoundError(f"{data / 'prompts.jsonl'}: {len(prompts)} prompts, none left for round {r}")
    return prompts[start : start + n]


def sample_answers(sources: list[Path], prompts: list[dict], params: Params, r: int) -> list[list[str]]:
    """K answers per prompt (K drawn in k_min..k_max), spread round-robin over the source policies."""
    import torch

    from components.models.generation import generate_ids
    from components.models.model import context_length, inference_device, load_causal_lm, load_tokenizer
    from components.models.text import prompt_ids

    p = params.pipeline
    rng = random.Random(f"k-{p.seed}-{r}")
    ks = [rng.randint(params.data.k_min, params.data.k_max) for _ in prompts]
    answers: list[list[str]] = [[] for _ in prompts]
    torch.manual_seed(p.seed + r)
    for s, folder in enumerate(sources):
        model, tok = load_causal_lm(folder, device=inference_device()).eval(), load_tokenizer(folder)
        context = context_length(model.config, params.model.context)
        # Source s answers slots s, s + len(sources), ... of each prompt.
        wanted = [len(range(s, k, len(sources))) for k in ks]
        for i0 in range(0, len(prompts), 64):
            batch = list(range(i0, min(i0 + 64, len(prompts))))
            ids = [prompt_ids(tok, prompts[i]["messages"])[-(context - p.max_new_tokens) :] for i in batch]
            for draw in range(max(wanted[i] for i in batch)):
                new = generate_ids(model, tok, ids, p.max_new_tokens, temperature=p.temperature)
                for i, row in zip(batch, new, strict=True):
                    if draw < wanted[i]:
                        answers[i].append(tok.decode(row, skip_special_tokens=True).strip())
    return answers


def comparable(prompts: list[dict], answers: list[list[str]]) -> tuple[list[dict], list[list[str]]]:
    """Drop empty answers (end-of-sequence first breaks the data contract) and repeats of an answer,
    then prompts left with fewer than two answers: they have nothing to compare.

    A sharp policy often samples the same answer twice. Ranking two copies asks a labeler (or the
    simulated one, whose noise can order them) for a preference that cannot exist, and teaches the
    reward model nothing: the pair's loss is log 2 whatever its weights.
    """
    kept = [(p, [a for a in dict.fromkeys(a_list) if a]) for p, a_list in zip(prompts, answers, strict=True)]
    kept = [(p, a) for p, a in kept if len(a) >= 2]
    return [p for p, _ in kept], [a for _, a in kept]


def simulated_ranks(
    data: Path, prompts: list[dict], answers: list[list[str]], params: Params, r: int
) -> tuple[list[list[int]], dict]:
    """The simulated labeler on these answers: their ranks, and its noise and measured agreement.

    The noise is calibrated on these answers (`labeler.rank_all`): two labelers agree on
    `labeler.agreement_target` of their pairs, as in the world's own comparisons. The world's noise
    (data/stats.json) would agree on only about 0.60 of a policy's samples, which lie close
    together in gold; it remains for answers too alike to reach the target at all (possible only
    with `labeler.tie_margin` 0).
    """
    from components.eval.gold import load_gold
    from components.world.grader import grade
    from components.world.labeler import rank_all

    stats, gold = data / "stats.json", load_gold(data)
    if not stats.exists() or gold is None or any(p["id"] not in gold for p in prompts):
        raise RoundError(f"{data}: no gold specs or labeler calibration (stats.json): label these rounds by hand")
    world_noise = json.loads(stats.read_text(encoding="utf-8"))["labeler_noise"]
    golds = [[grade(gold[p["id"]], a).score for a in a_list] for p, a_list in zip(prompts, answers, strict=True)]
    target, margin, seed = params.labeler.agreement_target, params.labeler.tie_margin, f"{params.pipeline.seed}-{r}"
    return rank_all(golds, target, margin, seed, fallback=world_noise)


def comparison_records(prompts: list[dict], answers: list[list[str]], ranks: list[list[int]], r: int) -> list[dict]:
    records = []
    for i, (p, a, k) in enumerate(zip(prompts, answers, ranks, strict=True)):
        if len(set(k)) < 2:
            continue  # all tied: no pair to learn from
        records.append({"id": f"cmp-r{r:02d}-{i:06d}", "user_id": p["user_id"], "category": p["category"],
                        "messages": p["messages"], "completions": a, "ranks": k, "round": r,
                        "prompt_id": p["id"], "labeler": "simulated"})  # fmt: skip
    return records


def gold_for(records: list[dict], gold: dict[str, dict]) -> list[dict]:
    """Gold specs under the new comparison ids (the same prompt's spec), for evaluation only."""
    return [{**gold[r["prompt_id"]], "id": r["id"]} for r in records if r.get("prompt_id") in gold]


def build_round_data(root: Path, sub: Path, r: int, new: list[dict]) -> None:
    """Round data = the project's data + the comparisons of rounds 2..r; the models it starts from linked in."""
    from components.eval.gold import load_gold

    data = sub / "data"
    if data.exists():
        shutil.rmtree(data)
    shutil.copytree(root / "data", data, ignore=shutil.ignore_patterns("comparisons.jsonl", "gold.jsonl"))
    rounds = [read_jsonl(round_root(root, q) / NEW_COMPARISONS) for q in range(2, r)] + [new]
    added = [c for batch in rounds for c in batch]
    write_jsonl(data / "comparisons.jsonl", read_jsonl(root / "data" / "comparisons.jsonl") + added)
    gold = load_gold(root / "data")
    if gold is not None:
        write_jsonl(data / "gold.jsonl", list(gold.values()) + gold_for(added, gold))
    models = sub / "artifacts" / "models"
    models.mkdir(parents=True, exist_ok=True)
    for name in ("base", "sft"):
        link(models / name, (root / "artifacts" / "models" / name).resolve())
    link(models / "ppo_init", (previous_root(root, r) / "artifacts" / "models" / "ppo").resolve())
    metrics = sub / "artifacts" / "metrics"
    metrics.mkdir(parents=True, exist_ok=True)
    shutil.copy(root / "artifacts" / "metrics" / "select_sft.json", metrics / "select_sft.json")


def link(path: Path, target: Path) -> None:
    if path.is_symlink() or path.exists():
        path.unlink() if path.is_symlink() else shutil.rmtree(path)
    path.symlink_to(target, target_is_directory=True)


def accuracy_on(rm: Path, records: list[dict], gold: dict | None, context: int) -> dict:
    """The reward model's pairwise accuracy on RECORDS against the labeler's ranks and the gold grader."""
    from components.models.model import inference_device, load_reward_model
    from components.train.rm import evaluate_rm

    if not records:
        return {"accuracy": None, "gold_accuracy": None}
    model, tok = load_reward_model(rm, device=inference_device())
    return evaluate_rm(model, tok, records, gold, context)


def sample_and_label(params: Params, root: Path, r: int) -> list[dict]:
    """Steps 1-2: the new comparisons of round r, written to the round folder (kept when rerun)."""
    from components.loop.labeling import TASKS, wait_for_labels

    sub = round_root(root, r)
    path = sub / NEW_COMPARISONS
    if path.exists():
        return read_jsonl(path)
    human = params.pipeline.labels == "human"
    if human and (sub / TASKS).exists():  # sampled already; waiting for (or collecting) labels
        records = wait_for_labels(sub, [], [], r)
    else:
        prompts = fresh_prompts(root / "data", r, params.pipeline.prompts_per_round, params.pipeline.seed)
        from components.stages import selected_sft

        sources = {"policy": previous_root(root, r) / "artifacts" / "models" / "ppo", "sft": selected_sft(root)}
        answers = sample_answers([sources[s] for s in params.pipeline.sources], prompts, params, r)
        prompts, answers = comparable(prompts, answers)
        if human:
            records = wait_for_labels(sub, prompts, answers, r)
        else:
            ranks, agreement = simulated_ranks(root / "data", prompts, answers, params, r)
            write_json(sub / LABELER, agreement)
            records = comparison_records(prompts, answers, ranks, r)
    write_jsonl(path, records)
    return records


def mlflow_uri() -> str:
    import mlflow

    return mlflow.get_tracking_uri()


@contextmanager
def round_run(root: Path, r: int) -> Iterator[Callable[[dict], None]]:
    """An MLflow run `round-NN` under the pipeline's parent; the round's stage runs nest inside it.

    Stages in the round folder log to the project's store (INSTRUCTFLOW_MLFLOW_URI), not to one of
    their own. Yields a function that logs the round's numbers on its run.
    """
    saved = {k: os.environ.get(k) for k in (PARENT_ENV, STORE_ENV)}
    client, run_id = None, None
    if os.environ.get("INSTRUCTFLOW_TRACKING", "on") != "off":
        from mlflow import MlflowClient

        experiment_id = configure(root)
        os.environ[STORE_ENV] = mlflow_uri()
        tags = {"instructflow.round": str(r), "mlflow.runName": f"round-{r:02d}"}
        if saved[PARENT_ENV]:
            tags["mlflow.parentRunId"] = saved[PARENT_ENV]
        client = MlflowClient()
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
    from components.train.core import fingerprint

    previous = previous_root(root, r) / "artifacts" / "models" / "ppo"
    return fingerprint(params.model_dump(mode="json"), data_fingerprint(root / "data"), r, previous)


def done_round(params: Params, root: Path, r: int) -> dict | None:
    """Round r's row when it finished with exactly these inputs, else None."""
    path = round_root(root, r) / "round.json"
    if not path.exists():
        return None
    row = json.loads(path.read_text(encoding="utf-8"))
    return row if row.get("key") == round_key(params, root, r) else None


def prepare_round(params: Params, root: Path, r: int) -> int:
    """Sample (and, with simulated labels, rank) round r's answers without training; returns tasks pending."""
    from components.loop.labeling import LabelsPending, labels_pending

    sub, key = round_root(root, r), round_key(params, root, r)
    if (sub / "key").exists() and (sub / "key").read_text() != key:
        shutil.rmtree(sub)
    sub.mkdir(parents=True, exist_ok=True)
    (sub / "key").write_text(key)
    try:
        sample_and_label(params, root, r)
    except LabelsPending:
        pass
    return labels_pending(sub)


def run_round(params: Params, root: Path, r: int) -> dict:
    """Round r (>= 2) end to end in artifacts/rounds/round-NN; returns its row of rounds.json.

    A round folder made from other inputs is removed first; one from the same inputs keeps its
    sampled and labelled comparisons, so a crashed round resumes without sampling again.
    """
    if r < 2:
        raise RoundError("round 1 is the main pipeline; rounds start at 2")
    if (row := done_round(params, root, r)) is not None:
        return row
    sub, key = round_root(root, r), round_key(params, root, r)
    if (sub / "key").exists() and (sub / "key").read_text() != key:
        shutil.rmtree(sub)
    sub.mkdir(parents=True, exist_ok=True)
    (sub / "key").write_text(key)
    with round_run(root, r) as log:
        row = round_stages(params, root, r, sub)
        log(row)
    row["key"] = key
    write_json(sub / "round.json", row)
    return row


def round_stages(params: Params, root: Path, r: int, sub: Path) -> dict:
    from components.stages import STAGES

    new = sample_and_label(params, root, r)
    build_round_data(root, sub, r, new)
    for name in ("validate", "prepare", "rm"):
        STAGES[name].run(params, sub)
    test_ids = {c["id"] for c in read_jsonl(sub / "artifacts" / "data" / "test" / "comparisons.jsonl")}
    held_out = [c for c in new if c["id"] in test_ids]
    from components.eval.gold import load_gold

    context, gold = params.model.context, load_gold(sub / "data")
    before = accuracy_on(previous_root(root, r) / "artifacts" / "models" / "rm", held_out, gold, context)
    after = accuracy_on(sub / "artifacts" / "models" / "rm", held_out, gold, context)
    STAGES["ppo"].run(params, sub)
    evaluation = STAGES["evaluate"].run(params, sub)
    row = round_row(r, evaluation, after["accuracy"])
    row.update({"previous_rm_accuracy_on_new_samples": before["accuracy"],
                "rm_gold_accuracy_on_new_samples": after["gold_accuracy"],
                "previous_rm_gold_accuracy_on_new_samples": before["gold_accuracy"], "new_comparisons": len(new),
                "held_out_new_comparisons": len(held_out), "data_version": data_fingerprint(sub / "data")})  # fmt: skip
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
    metrics = root / "artifacts" / "metrics"
    evaluation = json.loads((metrics / "evaluate.json").read_text(encoding="utf-8"))
    rm = json.loads((metrics / "rm.json").read_text(encoding="utf-8"))
    return round_row(1, evaluation, rm["accuracy"])


def final_root(root: Path, rounds: int) -> Path:
    """Where the last round's models and evaluation are: what `register` registers."""
    return root if rounds <= 1 else round_root(root, rounds)


def plot_rounds(rows: list[dict], path: Path) -> Path:
    from components.eval.report import pyplot, save

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    x = [row["round"] for row in rows]
    for key, label in (("win_rate_vs_sft", "gold win rate vs SFT"), ("gold_score", "gold score"),
                       ("rm_accuracy_on_new_samples", "RM accuracy on newest comparisons")):  # fmt: skip
        ax.plot(x, [row[key] if row[key] is not None else float("nan") for row in rows], "o-", label=label)
    ax2 = ax.twinx()
    ax2.plot(x, [row["kl_to_sft"] for row in rows], "s--", color="grey", label="KL to SFT")
    ax2.set_ylabel("KL to SFT")
    ax.set_xlabel("round")
    ax.set_xticks(x)
    ax.legend(loc="upper left", fontsize=8)
    ax2.legend(loc="lower right", fontsize=8)
    ax.set_title("Rounds of the feedback loop")
    return save(fig, path)


def rounds_body(params: Params, root: Path, tracker) -> list[dict]:
    """The `rounds` stage: rounds 2..N (a round finished on the same inputs is reused), rounds.json, its plot."""
    from components.tracking import stage_run

    rows = [first_round(root)] + [run_round(params, root, r) for r in range(2, params.pipeline.rounds + 1)]
    plot = plot_rounds(rows, root / ROUNDS / "rounds.png")
    with stage_run("rounds", {"pipeline": params.pipeline.model_dump()}, root) as summary:
        for row in rows:
            summary.log(
                {k: v for k, v in row.items() if k != "round" and isinstance(v, int | float)}, step=row["round"]
            )
        summary.log_artifact(plot, "rounds")
    return rows


def publish(root: Path, rounds: int) -> int:
    """Append every round's comparisons (with their `round`) to data/, the data's next version.

    The next pipeline run trains its first reward model on them too. Returns how many were added.
    """
    from components.eval.gold import load_gold

    added = [c for r in range(2, rounds + 1) for c in read_jsonl(round_root(root, r) / NEW_COMPARISONS)]
    if not added:
        return 0
    data = root / "data"
    known = {c["id"] for c in read_jsonl(data / "comparisons.jsonl")}
    added = [c for c in added if c["id"] not in known]
    write_jsonl(data / "comparisons.jsonl", read_jsonl(data / "comparisons.jsonl") + added)
    gold = load_gold(data)
    if gold is not None:
        write_jsonl(data / "gold.jsonl", list(gold.values()) + gold_for(added, gold))
    return len(added)
