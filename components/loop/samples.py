"""A round's new data: the policy answers fresh prompts, a labeler ranks the answers, and the
ranked answers join the project's comparisons. Plain functions over files; the round's stages
are run by components/loop/rounds.py.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path

from components.data.io import read_jsonl, write_json, write_jsonl
from components.errors import StageError
from components.eval.gold import load_gold
from components.eval.metrics import evaluate_rm
from components.eval.report import pyplot, save
from components.forks import map_shares, usable
from components.loop.labeling import TASKS, wait_for_labels
from components.models.generation import generate_ids
from components.models.model import context_length, inference_device, load_causal_lm, load_tokenizer
from components.models.reward import load_reward_model
from components.models.text import prompt_ids
from components.params import Params
from components.paths import DATA, METRICS, MODELS, previous_root, round_root, selected_sft
from components.world.grader import grade
from components.world.labeler import rank_all

NEW_COMPARISONS = "new_comparisons.jsonl"
LABELER = "labeler.json"  # the simulated labeler's noise and measured agreement on a round's answers


class RoundError(StageError):
    """A round cannot run (no labels yet, no labeler calibration, a missing previous round)."""


def fresh_prompts(data: Path, r: int, n: int, seed: int) -> list[dict]:
    """Round r's slice of a seeded shuffle of the prompts: no prompt is asked in two rounds."""
    prompts = read_jsonl(data / "prompts.jsonl")
    random.Random(f"rounds-{seed}").shuffle(prompts)
    start = (r - 2) * n
    if start >= len(prompts):
        raise RoundError(f"{data / 'prompts.jsonl'}: {len(prompts)} prompts, none left for round {r}")
    return prompts[start : start + n]


def sample_answers(sources: list[Path], prompts: list[dict], params: Params, r: int) -> list[list[str]]:
    """K answers per prompt (K drawn in k_min..k_max), spread round-robin over the source policies.

    Each batch of prompts draws from its own seed, so the answers do not depend on how the batches
    are split over `resources.inference_processes`.
    """
    rng = random.Random(f"k-{params.pipeline.seed}-{r}")
    ks = [rng.randint(params.data.k_min, params.data.k_max) for _ in prompts]
    answers: list[list[str]] = [[] for _ in prompts]
    for s, folder in enumerate(sources):
        wanted = [len(range(s, k, len(sources))) for k in ks]  # source s answers slots s, s + len(sources), ...
        for texts, new in zip(answers, source_answers(folder, prompts, wanted, params, (r, s)), strict=True):
            texts += new
    return answers


def source_answers(folder: Path, prompts: list[dict], wanted: list[int], params: Params, key: tuple) -> list:
    """WANTED[i] sampled answers of the policy at FOLDER to prompt i, in batches of 64 over forked processes."""
    model, tok = load_causal_lm(folder, device=inference_device()).eval(), load_tokenizer(folder)
    context = context_length(model.config, params.model.context)
    batches = [list(range(i0, min(i0 + 64, len(prompts)))) for i0 in range(0, len(prompts), 64)]

    def draw(share: list[list[int]]) -> list[list[list[str]]]:
        return [
            draw_batch(model, tok, [prompts[i] for i in b], [wanted[i] for i in b], params, context, (*key, b[0]))
            for b in share
        ]

    drawn = map_shares(draw, batches, usable(params.resources.inference_processes, model.device))
    return [texts for batch in drawn for texts in batch]


def draw_batch(model, tok, prompts: list[dict], wanted: list[int], params: Params, context: int, key: tuple) -> list:
    """WANTED[i] sampled answers to each prompt, from a seed of its own (the pipeline seed and KEY)."""
    p = params.pipeline
    ids = [prompt_ids(tok, q["messages"])[-(context - p.max_new_tokens) :] for q in prompts]
    seed = int.from_bytes(hashlib.sha256(repr((p.seed, *key)).encode()).digest()[:4], "big")
    answers: list[list[str]] = [[] for _ in prompts]
    for d in range(max(wanted)):
        new = generate_ids(model, tok, ids, p.max_new_tokens, temperature=p.temperature, generator_seed=seed + d)
        for texts, row, k in zip(answers, new, wanted, strict=True):
            if d < k:
                texts.append(tok.decode(row, skip_special_tokens=True).strip())
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
    (data/stats.json) would agree far less on a policy's samples, which lie close
    together in gold; it remains for answers too alike to reach the target at all (possible only
    with `labeler.tie_margin` 0).
    """
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
    data = sub / DATA
    if data.exists():
        shutil.rmtree(data)
    shutil.copytree(root / DATA, data, ignore=shutil.ignore_patterns("comparisons.jsonl", "gold.jsonl"))
    rounds = [read_jsonl(round_root(root, q) / NEW_COMPARISONS) for q in range(2, r)] + [new]
    added = [c for batch in rounds for c in batch]
    write_jsonl(data / "comparisons.jsonl", read_jsonl(root / DATA / "comparisons.jsonl") + added)
    gold = load_gold(root / DATA)
    if gold is not None:
        write_jsonl(data / "gold.jsonl", list(gold.values()) + gold_for(added, gold))
    models = sub / MODELS
    models.mkdir(parents=True, exist_ok=True)
    for name in ("base", "sft", "judge_rm"):  # the judge stays the main project's: every round is judged alike
        if (root / MODELS / name).exists():
            link(models / name, (root / MODELS / name).resolve())
    link(models / "ppo_init", (previous_root(root, r) / MODELS / "ppo").resolve())
    metrics = sub / METRICS
    metrics.mkdir(parents=True, exist_ok=True)
    for name in ("select_sft.json", "judge_rm.json"):
        if (root / METRICS / name).exists():
            shutil.copy(root / METRICS / name, metrics / name)


def link(path: Path, target: Path) -> None:
    if path.is_symlink() or path.exists():
        path.unlink() if path.is_symlink() else shutil.rmtree(path)
    path.symlink_to(target, target_is_directory=True)


def accuracy_on(rm: Path, records: list[dict], gold: dict | None, context: int) -> dict:
    """The reward model's pairwise accuracy on RECORDS against the labeler's ranks and the gold grader."""
    if not records:
        return {"accuracy": None, "gold_accuracy": None}
    model, tok = load_reward_model(rm, device=inference_device())
    return evaluate_rm(model, tok, records, gold, context)


def publish(root: Path, rounds: int) -> int:
    """Append every round's comparisons (with their `round`) to data/, the data's next version.

    The next pipeline run trains its first reward model on them too. Returns how many were added.
    """
    added = [c for r in range(2, rounds + 1) for c in read_jsonl(round_root(root, r) / NEW_COMPARISONS)]
    if not added:
        return 0
    data = root / DATA
    known = {c["id"] for c in read_jsonl(data / "comparisons.jsonl")}
    added = [c for c in added if c["id"] not in known]
    write_jsonl(data / "comparisons.jsonl", read_jsonl(data / "comparisons.jsonl") + added)
    gold = load_gold(data)
    if gold is not None:
        write_jsonl(data / "gold.jsonl", list(gold.values()) + gold_for(added, gold))
    return len(added)


def plot_rounds(rows: list[dict], path: Path) -> Path:

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


def sample_and_label(params: Params, root: Path, r: int) -> list[dict]:
    """Steps 1-2: the new comparisons of round r, written to the round folder (kept when rerun)."""
    sub = round_root(root, r)
    path = sub / NEW_COMPARISONS
    if path.exists():
        return read_jsonl(path)
    human = params.pipeline.labels == "human"
    if human and (sub / TASKS).exists():  # sampled already; waiting for (or collecting) labels
        records = wait_for_labels(sub, [], [], r)
    else:
        prompts = fresh_prompts(root / DATA, r, params.pipeline.prompts_per_round, params.pipeline.seed)
        sources = {"policy": previous_root(root, r) / MODELS / "ppo", "sft": selected_sft(root)}
        answers = sample_answers([sources[s] for s in params.pipeline.sources], prompts, params, r)
        prompts, answers = comparable(prompts, answers)
        if human:
            records = wait_for_labels(sub, prompts, answers, r)
        else:
            ranks, agreement = simulated_ranks(root / DATA, prompts, answers, params, r)
            write_json(sub / LABELER, agreement)
            records = comparison_records(prompts, answers, ranks, r)
    write_jsonl(path, records)
    return records
