"""Diagnosis, not part of the pipeline: does the reward model rank a policy's own answers?

The `rm` stage reports accuracy on held-out comparisons, whose candidates are corruptions of
ideal answers. PPO needs something else: the right order among the policy's own samples.
This script measures that against the toy world's gold grader and prints one JSON line:

* `onpolicy_gold_accuracy`: pairwise accuracy of the RM on K temperature-1 samples per test
  prompt (pairs with equal gold skipped), also per category and per gold gap between the two
  answers (`onpolicy_by_category`, `onpolicy_by_gold_gap`: [accuracy, pairs]);
* `best_of_k_by_rm_vs_greedy` / `best_of_k_by_gold_vs_greedy`: gold win rate (ties half) of
  the sample the RM (or the gold grader, an oracle) picks, against the greedy answer;
* `swap_probe`: how often the RM prefers an invitation that names the prompt's person, place
  and day over the same text with one of them swapped (0.5 is chance);
* `repeat_probe`: how often the RM prefers a test prompt's ideal answer over the same answer
  with one named thing said in place of another of its type ("box, map and map"), the
  policy's commonest slip; [accuracy, pairs];
* `greedy_repeat_slips`: greedy answers below full gold that name something more often than
  the ideal does, and `win_rate_if_slips_fixed`, the win rate against SFT a policy would reach
  by improving exactly those answers and no others (0.5 + slips / (2 x prompts)).

    .venv/bin/python -m research.rm_diagnose [--root .] [--policy FOLDER] [--rm FOLDER] [--prompts 200] [--k 4]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import torch

from components.data.io import read_jsonl
from components.eval.gold import load_gold
from components.eval.metrics import pair_accuracy, score, win_rate
from components.loop.samples import sample_answers
from components.models.generation import answer
from components.models.model import context_length, load_causal_lm, load_tokenizer
from components.models.reward import load_reward_model
from components.params import Params, load_params
from components.world.grader import grade, mentions, words
from components.world.kb import DAYS, ENTITY_TYPES, PEOPLE, PLACES

INVITE = "Write an invitation to {person} for a party in {place} on {day}."
ANSWER = "Hello {person}! You are invited to a party in {place} on {day}."
SWAPS = (("person", PEOPLE), ("place", PLACES), ("day", DAYS))


def swap_probe(reward_model, rm_tok, context: int, n: int = 200, seed: int = 0) -> dict[str, float]:
    r = random.Random(seed)
    prompts, answers = [], []  # (right, wrong) answer pairs, scored in one batched pass
    for _ in range(n):
        values = {"person": r.choice(PEOPLE), "place": r.choice(PLACES), "day": r.choice(DAYS)}
        right = ANSWER.format(**values)
        for key, pool in SWAPS:
            wrong = right.replace(values[key], r.choice([v for v in pool if v != values[key]]))
            prompts += [[{"role": "user", "content": INVITE.format(**values)}]] * 2
            answers += [right, wrong]
    rewards = score(reward_model, rm_tok, prompts, answers, context)
    wins = [good > bad for good, bad in zip(rewards[::2], rewards[1::2], strict=True)]
    return {key: sum(wins[i :: len(SWAPS)]) / n for i, (key, _) in enumerate(SWAPS)}


def named(text: str) -> Counter:
    """How often the text names each known entity."""
    return Counter(mentions(words(text)))


def repeat_slip(answer: str, ideal: str) -> bool:
    """The answer names something more than once, and more often than the ideal does."""
    wanted = named(ideal)
    return any(n > 1 and n > wanted[e] for e, n in named(answer).items())


def with_repeat(ideal: str, r: random.Random) -> str | None:
    """The ideal with one named thing said in place of another of its type, or None."""
    found = [m for m in re.finditer(r"[A-Za-z]+", ideal) if m.group().lower() in ENTITY_TYPES]
    kind = lambda m: ENTITY_TYPES[m.group().lower()]  # noqa: E731
    pairs = [(a, b) for a in found for b in found if a.group().lower() != b.group().lower() and kind(a) == kind(b)]
    if not pairs:
        return None
    keep, drop = r.choice(pairs)
    return ideal[: drop.start()] + keep.group() + ideal[drop.end() :]


def repeat_probe(reward_model, rm_tok, context: int, records: list[dict], gold: dict, seed: int = 0) -> list:
    """[share of prompts where the RM prefers the ideal over its repeat-slip version, prompts]."""
    r, prompts, answers = random.Random(seed), [], []
    for rec in records:
        spec = gold[rec["id"]]
        slip = with_repeat(spec["ideal"], r)
        if slip and grade(spec, slip).score < grade(spec, spec["ideal"]).score:
            prompts += [rec["messages"]] * 2
            answers += [spec["ideal"], slip]
    rewards = score(reward_model, rm_tok, prompts, answers, context) if prompts else []
    wins = [good > bad for good, bad in zip(rewards[::2], rewards[1::2], strict=True)]
    return [sum(wins) / len(wins) if wins else None, len(wins)]


GAPS = ((0.0, 0.1), (0.1, 0.3), (0.3, 0.6), (0.6, 1.0))


def accuracy_over(rewards: list[list[float]], golds: list[list[float]], keep: Callable[[int, float], bool]) -> list:
    """[pairwise accuracy against gold, pairs] over the pairs with unequal gold that keep(prompt, gap) admits."""
    right = total = 0
    for prompt, (w, g) in enumerate(zip(rewards, golds, strict=True)):
        for i, j in itertools.combinations(range(len(g)), 2):
            gap = abs(g[i] - g[j])
            if gap and keep(prompt, gap):
                total += 1
                right += (w[i] - w[j]) * (g[i] - g[j]) > 0
    return [right / total if total else None, total]


def diagnose(root: Path, policy: Path, rm: Path, params: Params, prompts: int, k: int) -> dict:
    gold = load_gold(root / "data")
    if gold is None:
        raise SystemExit(f"{root / 'data'}: no gold.jsonl: the diagnosis needs the embedded default world")
    records = read_jsonl(root / "artifacts" / "data" / "test" / "prompts.jsonl")[:prompts]
    n_new = params.pipeline.max_new_tokens
    sampling = params.model_copy(deep=True)  # a round's sampler, with exactly k temperature-1 answers each
    sampling.data.k_min = sampling.data.k_max = k
    sampling.pipeline.temperature = 1.0
    texts = sample_answers([policy], records, sampling, r=0)
    model, tok = load_causal_lm(policy).eval(), load_tokenizer(policy)
    greedy = answer(model, tok, [r["messages"] for r in records], n_new)
    greedy_gold = [grade(gold[r["id"]], a).score for r, a in zip(records, greedy, strict=True)]
    reward_model, rm_tok = load_reward_model(rm)
    context = context_length(reward_model.model.config, 1024)
    flat = score(reward_model, rm_tok, [r["messages"] for r in records for _ in range(k)], sum(texts, []), context)
    rewards = [flat[i * k : (i + 1) * k] for i in range(len(records))]
    golds = [[grade(gold[r["id"]], t).score for t in ts] for r, ts in zip(records, texts, strict=True)]
    slips = sum(
        g < 1 and repeat_slip(a, gold[r["id"]]["ideal"]) for r, a, g in zip(records, greedy, greedy_gold, strict=True)
    )
    by_rm = [g[max(range(k), key=w.__getitem__)] for g, w in zip(golds, rewards, strict=True)]
    categories = sorted({r["category"] for r in records})
    by_category = {c: accuracy_over(rewards, golds, lambda p, _, c=c: records[p]["category"] == c) for c in categories}
    by_gap = {
        f"{lo}-{hi}": accuracy_over(rewards, golds, lambda _, gap, lo=lo, hi=hi: lo < gap <= hi) for lo, hi in GAPS
    }
    return {
        "prompts": len(records),
        "k": k,
        "onpolicy_gold_accuracy": pair_accuracy(records, rewards, golds),
        "greedy_gold_score": sum(greedy_gold) / len(greedy_gold),
        "onpolicy_by_category": by_category,
        "onpolicy_by_gold_gap": by_gap,
        "best_of_k_by_rm_vs_greedy": win_rate(by_rm, greedy_gold),
        "best_of_k_by_gold_vs_greedy": win_rate([max(g) for g in golds], greedy_gold),
        "swap_probe": swap_probe(reward_model, rm_tok, context),
        "repeat_probe": repeat_probe(reward_model, rm_tok, context, records, gold),
        "greedy_repeat_slips": slips,
        "win_rate_if_slips_fixed": 0.5 + slips / (2 * len(records)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("."))
    ap.add_argument("--policy", type=Path, help="default: the selected SFT checkpoint")
    ap.add_argument("--rm", type=Path, help="default: artifacts/models/rm")
    ap.add_argument("--prompts", type=int, default=200)
    ap.add_argument("--k", type=int, default=4)
    args = ap.parse_args()
    from components.paths import selected_sft

    torch.set_num_threads(1)
    policy = args.policy or selected_sft(args.root)
    rm = args.rm or args.root / "artifacts" / "models" / "rm"
    params = load_params(args.root / "params.yaml")
    print(json.dumps(diagnose(args.root, policy, rm, params, args.prompts, args.k)))


if __name__ == "__main__":
    main()
