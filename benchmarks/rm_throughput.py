"""Reward-model throughput: comparisons (pairs) learned per second, K-choose-2 grouping vs independent pairs.

Grouped (the paper's way): each of a prompt's K completions is forwarded once and all C(K,2)
pairs share those rewards. Independent: the same pairs, each fed as its own two sequences.

    python -m benchmarks.rm_throughput          # one JSON line
"""

from __future__ import annotations

import itertools

import torch

from benchmarks.common import default_model, report, timed
from components.models.text import to_device
from components.params import Params
from components.train.rm import collate_comparisons, pairwise_loss

PROMPTS, K, PROMPT_LEN, COMPLETION_LEN = 8, 6, 40, 20


def comparisons(vocab: int) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(PROMPTS):
        prompt = torch.randint(0, vocab, (PROMPT_LEN,), generator=g).tolist()
        seqs = [prompt + torch.randint(0, vocab, (COMPLETION_LEN,), generator=g).tolist() for _ in range(K)]
        out.append({"sequences": seqs, "pairs": list(itertools.combinations(range(K), 2))})
    return out


def as_independent_pairs(grouped: list[dict]) -> list[dict]:
    return [
        {"sequences": [c["sequences"][w], c["sequences"][lose]], "pairs": [(0, 1)]}
        for c in grouped
        for w, lose in c["pairs"]
    ]


def throughput(model, optimizer, batch: dict) -> int:
    rewards = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.squeeze(-1)
    pairwise_loss(rewards, batch).backward()
    optimizer.step()
    optimizer.zero_grad()
    return len(batch["winners"])


def main(params: Params | None = None, repeats: int = 5) -> None:
    model, params = default_model("rm", params)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    grouped_data = comparisons(params.model.vocab_size)
    grouped = to_device(collate_comparisons(grouped_data, pad_id=0), model)
    independent = to_device(collate_comparisons(as_independent_pairs(grouped_data), pad_id=0), model)
    g_seconds, g_pairs = timed(lambda: throughput(model, optimizer, grouped), repeats=repeats)
    i_seconds, i_pairs = timed(lambda: throughput(model, optimizer, independent), repeats=repeats)
    grouped_rate, independent_rate = g_pairs / g_seconds, i_pairs / i_seconds
    report(
        "rm_comparisons_per_second",
        grouped_rate,
        "pairs/s",
        independent_pairs_per_second=round(independent_rate, 2),
        grouping_speedup=round(grouped_rate / independent_rate, 2),
        prompts=PROMPTS,
        k=K,
        completions_per_second=round(g_seconds and len(grouped["input_ids"]) * repeats / g_seconds, 2),
        model=f"{params.model.n_layer}x{params.model.n_embd}",
    )


if __name__ == "__main__":
    main()
