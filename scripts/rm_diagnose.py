"""Diagnosis, not part of the pipeline: does the reward model rank a policy's own answers?

The `rm` stage reports accuracy on held-out comparisons, whose candidates are corruptions of
ideal answers. PPO needs something else: the right order among the policy's own samples.
This script measures that against the toy world's gold grader and prints one JSON line:

* `onpolicy_gold_accuracy`: pairwise accuracy of the RM on K temperature-1 samples per test
  prompt (pairs with equal gold skipped);
* `best_of_k_by_rm_vs_greedy` / `best_of_k_by_gold_vs_greedy`: gold win rate (ties half) of
  the sample the RM (or the gold grader, an oracle) picks, against the greedy answer;
* `swap_probe`: how often the RM prefers an invitation that names the prompt's person, place
  and day over the same text with one of them swapped (0.5 is chance).

    .venv/bin/python scripts/rm_diagnose.py [--root .] [--policy FOLDER] [--rm FOLDER] [--prompts 200] [--k 4]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
from pathlib import Path

import torch

from components.generation import answer, generate_ids
from components.gold import load_gold
from components.io import read_jsonl
from components.model import load_causal_lm, load_reward_model, load_tokenizer
from components.ppo import win_rate
from components.rm import score
from components.text import prompt_ids
from components.world.grader import grade
from components.world.kb import DAYS, PEOPLE, PLACES


def samples(model, tok, records: list[dict], k: int, n_new: int, batch: int = 32) -> list[list[str]]:
    """k seeded temperature-1 answers per record."""
    out: list[list[str]] = [[] for _ in records]
    for j in range(k):
        for i in range(0, len(records), batch):
            chunk = [prompt_ids(tok, r["messages"]) for r in records[i : i + batch]]
            ids = generate_ids(model, tok, chunk, n_new, temperature=1.0, generator_seed=1000 * j + i)
            for row, new in enumerate(ids):
                out[i + row].append(tok.decode(new, skip_special_tokens=True).strip())
    return out


def swap_probe(reward_model, rm_tok, context: int, n: int = 200, seed: int = 0) -> dict[str, float]:
    r = random.Random(seed)
    wins = {"person": 0, "place": 0, "day": 0}
    for _ in range(n):
        values = {"person": r.choice(PEOPLE), "place": r.choice(PLACES), "day": r.choice(DAYS)}
        prompt = [
            {
                "role": "user",
                "content": "Write an invitation to {person} for a party in {place} on {day}.".format(**values),
            }
        ]
        right = "Hello {person}! You are invited to a party in {place} on {day}.".format(**values)
        for key, pool in (("person", PEOPLE), ("place", PLACES), ("day", DAYS)):
            wrong = right.replace(values[key], r.choice([v for v in pool if v != values[key]]))
            good, bad = score(reward_model, rm_tok, [prompt, prompt], [right, wrong], context)
            wins[key] += good > bad
    return {key: won / n for key, won in wins.items()}


def diagnose(root: Path, policy: Path, rm: Path, prompts: int, k: int, n_new: int = 48) -> dict:
    gold = load_gold(root / "data")
    if gold is None:
        raise SystemExit(f"{root / 'data'}: no gold.jsonl: the diagnosis needs the embedded default world")
    records = read_jsonl(root / "artifacts" / "data" / "test" / "prompts.jsonl")[:prompts]
    model, tok = load_causal_lm(policy).eval(), load_tokenizer(policy)
    reward_model, rm_tok = load_reward_model(rm)
    context = getattr(reward_model.model.config, "n_positions", 1024)
    greedy = [
        grade(gold[r["id"]], a).score
        for r, a in zip(records, answer(model, tok, [r["messages"] for r in records], n_new), strict=True)
    ]
    right = total = 0
    by_rm, by_gold = [], []
    for record, texts in zip(records, samples(model, tok, records, k, n_new), strict=True):
        golds = [grade(gold[record["id"]], t).score for t in texts]
        rewards = score(reward_model, rm_tok, [record["messages"]] * k, texts, context)
        for a, b in itertools.combinations(range(k), 2):
            if golds[a] != golds[b]:
                total += 1
                right += (rewards[a] - rewards[b]) * (golds[a] - golds[b]) > 0
        by_rm.append(golds[max(range(k), key=rewards.__getitem__)])
        by_gold.append(max(golds))
    return {
        "prompts": len(records),
        "k": k,
        "onpolicy_gold_accuracy": right / total if total else None,
        "pairs": total,
        "greedy_gold_score": sum(greedy) / len(greedy),
        "best_of_k_by_rm_vs_greedy": win_rate(by_rm, greedy),
        "best_of_k_by_gold_vs_greedy": win_rate(by_gold, greedy),
        "swap_probe": swap_probe(reward_model, rm_tok, context),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("."))
    ap.add_argument("--policy", type=Path, help="default: the selected SFT checkpoint")
    ap.add_argument("--rm", type=Path, help="default: artifacts/models/rm")
    ap.add_argument("--prompts", type=int, default=200)
    ap.add_argument("--k", type=int, default=4)
    args = ap.parse_args()
    from components.stages import selected_sft

    torch.set_num_threads(1)
    policy = args.policy or selected_sft(args.root)
    rm = args.rm or args.root / "artifacts" / "models" / "rm"
    print(json.dumps(diagnose(args.root, policy, rm, args.prompts, args.k)))


if __name__ == "__main__":
    main()
