"""The `rm` stage: a reward model trained on ranked comparisons, K-choose-2 per prompt.

As in the paper, all C(K,2) untied pairs of one prompt form one batch element: each of the
K completions is forwarded once, and the prompt's loss is the mean over its pairs of
-log sigmoid(r_w - r_l). A batch counts prompts. After training, a bias makes labeler
demonstrations score mean 0; it is saved in the model's config (`reward_bias`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

from components.data.io import read_jsonl
from components.eval.gold import load_gold
from components.eval.metrics import evaluate_rm, score
from components.hashing import values_digest
from components.models.model import context_length, load_tokenizer, save_pretrained
from components.models.reward import RewardModel, reward_model_from
from components.models.text import completion_ids, join, pad_right, prompt_ids
from components.params import Params
from components.tracking import Tracker
from components.train.core import fit


def ranked_pairs(ranks: Sequence[int]) -> list[tuple[int, int]]:
    """(winner, loser) index pairs; rank 1 is best and ties make no pair."""
    return [
        (i, j) if ranks[i] < ranks[j] else (j, i)
        for i, j in itertools.combinations(range(len(ranks)), 2)
        if ranks[i] != ranks[j]
    ]


def comparison_example(tok, record: dict, max_len: int) -> dict:
    prompt = prompt_ids(tok, record["messages"])
    sequences = [join(prompt, completion_ids(tok, c), max_len)[0] for c in record["completions"]]
    return {"sequences": sequences, "pairs": ranked_pairs(record["ranks"])}


def collate_comparisons(batch: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """All completions of the batch's prompts flattened; pairs index them, weighted per prompt."""
    sequences, winners, losers, weights = [], [], [], []
    for example in batch:
        offset, n = len(sequences), len(example["pairs"])
        sequences += example["sequences"]
        for w, lose in example["pairs"]:
            winners.append(offset + w)
            losers.append(offset + lose)
            weights.append(1.0 / (n * len(batch)))
    return {
        "input_ids": pad_right(sequences, pad_id),
        "attention_mask": pad_right([[1] * len(s) for s in sequences], 0),
        "winners": torch.tensor(winners, dtype=torch.long),
        "losers": torch.tensor(losers, dtype=torch.long),
        "weights": torch.tensor(weights),
    }


def pairwise_loss(rewards: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean over prompts of the mean over each prompt's pairs of -log sigmoid(r_w - r_l)."""
    margin = rewards[batch["winners"]] - rewards[batch["losers"]]
    return (batch["weights"] * -F.logsigmoid(margin)).sum()


def rm_step(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    rewards = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.squeeze(-1)
    loss = pairwise_loss(rewards, batch)
    correct = (rewards[batch["winners"]] > rewards[batch["losers"]]).float().mean()
    return loss, {
        "tokens": int(batch["attention_mask"].sum()),
        "examples": len(batch["winners"]),  # pairs learned from
        "completions": len(batch["input_ids"]),
        "train_accuracy": correct.item(),
    }


def run_rm(
    params: Params,
    data: Path,
    splits: Path,
    init: Path,
    out: Path,
    run_dir: Path,
    tracker: Tracker,
    split: str = "train",
) -> dict:
    """Train on SPLIT's comparisons (the judge reward model: the judge split's), report on the test split's."""
    p = params.rm
    tok = load_tokenizer(init)
    torch.manual_seed(p.seed)
    model = reward_model_from(init, tok.pad_token_id)
    context = context_length(model.config, params.model.context)
    train = [comparison_example(tok, r, context) for r in read_jsonl(splits / split / "comparisons.jsonl")]
    train = [e for e in train if e["pairs"]]
    key = values_digest(p, train, init)
    collate = partial(collate_comparisons, pad_id=tok.pad_token_id)
    lengths = [max(map(len, e["sequences"])) for e in train]  # a prompt's longest completion
    where = (params.resources, run_dir, tracker, key)
    desc = "rm" if split == "train" else f"rm ({split})"
    model, result = fit(model, train, collate, rm_step, p, *where, desc=desc, lengths=lengths)
    # The paper's normalisation: labeler demonstrations score mean 0 before RL (the judge RM's too,
    # on the same demonstrations, so both scales start from one anchor).
    demos = read_jsonl(splits / "train" / "demonstrations.jsonl")
    model.config.reward_bias = 0.0  # the raw scores (an RM initialised from an RM carries its bias)
    unbiased = RewardModel(model).eval()
    n = params.resources.inference_processes
    raw = score(unbiased, tok, [d["messages"] for d in demos], [d["completion"] for d in demos], context, processes=n)
    model.config.reward_bias = -sum(raw) / len(raw)
    save_pretrained(model, tok, out)
    reward_model = RewardModel(model).eval()
    held_out = read_jsonl(splits / "test" / "comparisons.jsonl")[: p.eval_comparisons or None]
    test_demos = read_jsonl(splits / "test" / "demonstrations.jsonl")
    demo_rewards = score(
        reward_model,
        tok,
        [d["messages"] for d in test_demos],
        [d["completion"] for d in test_demos],
        context,
        processes=n,
    )
    completions = sum(len(e["sequences"]) for e in train) * p.epochs
    return {
        **evaluate_rm(reward_model, tok, held_out, load_gold(data), context, n),
        "reward_bias": model.config.reward_bias,
        "demo_mean_reward": sum(demo_rewards) / len(demo_rewards) if demo_rewards else None,
        "train_demo_mean_reward": sum(raw) / len(raw) + model.config.reward_bias,
        "train_comparisons": len(train),
        "comparisons_per_second": result.examples_per_second,
        "completions_per_second": completions / max(result.seconds, 1e-9),
        "tokens_per_second": result.tokens_per_second,
        "seconds": result.seconds,
    }
