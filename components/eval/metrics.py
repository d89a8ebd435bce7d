"""The measurements evaluation, model selection and the trainers' summaries share.

Win rates, the reward model's scores and pairwise accuracy, a policy's KL to another model on
its own samples, and perplexity on held-out text (the alignment tax). Nothing here trains.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch

from components.eval.judges import preferences
from components.forks import map_shares, usable
from components.models.generation import chunks, decode
from components.models.lm import collate_blocks, response_logprobs
from components.models.packing import pack_rows, packs_exactly
from components.models.reward import RewardModel
from components.models.text import batch_tensors, completion_ids, join, lm_loss, pad_right, prompt_ids, to_device
from components.params import PPOParams
from components.world.grader import grade


def mean(values: Sequence[float] | None) -> float | None:
    return sum(values) / len(values) if values else None


def win_rate(a: list[float], b: list[float]) -> float:
    """Share of prompts where a beats b; ties count half (its interval: components/eval/judges.py)."""
    return sum(preferences(a, b)) / len(a)


@torch.no_grad()
def score(
    model: torch.nn.Module,
    tok,
    messages: Sequence[list[dict]],
    completions: Sequence[str],
    max_len: int,
    batch_size: int = 64,
    processes: int = 1,
) -> list[float]:
    """Reward of each (conversation, completion), bias included when the model is a RewardModel.

    PROCESSES > 1 splits the rows over forked processes (components/forks.py).
    """
    rows = [
        join(prompt_ids(tok, m), completion_ids(tok, c), max_len)[0] for m, c in zip(messages, completions, strict=True)
    ]
    n = usable(processes, next(model.parameters()).device)
    return map_shares(lambda share: score_rows(model, tok, share, batch_size), rows, n)


@torch.no_grad()
def score_rows(model: torch.nn.Module, tok, rows: Sequence[list[int]], batch_size: int) -> list[float]:
    """The model's score of each token row, in batches."""
    rewards: list[float] = []
    for batch in chunks(rows, batch_size):
        ids, mask = pad_right(batch, tok.pad_token_id), pad_right([[1] * len(r) for r in batch], 0)
        ids, mask = to_device({"ids": ids, "mask": mask}, model).values()
        if isinstance(model, RewardModel) and packs_exactly(model.backbone):
            rewards += model(ids, mask, pack_rows(ids, mask)).tolist()  # padding-free (models/packing.py)
            continue
        out = model(input_ids=ids, attention_mask=mask)
        rewards += (out.logits.squeeze(-1) if hasattr(out, "logits") else out).tolist()
    return rewards


def pair_accuracy(records: list[dict], rewards: list[list[float]], orders: list[Sequence[float]]) -> float | None:
    """Share of pairs ordered as `orders` orders them (higher is better there); ties in `orders` skipped."""
    right = total = 0
    for r, order in zip(rewards, orders, strict=True):
        for i, j in itertools.combinations(range(len(order)), 2):
            if order[i] != order[j]:
                total += 1
                right += (r[i] - r[j]) * (order[i] - order[j]) > 0
    return right / total if total else None


def evaluate_rm(
    model: RewardModel, tok, records: list[dict], gold: dict | None, max_len: int, processes: int = 1
) -> dict:
    flat_m = [r["messages"] for r in records for _ in r["completions"]]
    flat_c = [c for r in records for c in r["completions"]]
    flat = score(model, tok, flat_m, flat_c, max_len, processes=processes)
    rewards, i = [], 0
    for r in records:
        rewards.append(flat[i : i + len(r["completions"])])
        i += len(r["completions"])
    labeler = [[-k for k in r["ranks"]] for r in records]  # rank 1 is best
    metrics = {"accuracy": pair_accuracy(records, rewards, labeler), "gold_accuracy": None}
    graded = [(r, w) for r, w in zip(records, rewards, strict=True) if gold is not None and r["id"] in gold]
    if graded:  # records labelled by people have no gold spec: judged by the labeler only
        golds = [[grade(gold[r["id"]], c).score for c in r["completions"]] for r, _ in graded]
        metrics["gold_accuracy"] = pair_accuracy([r for r, _ in graded], [w for _, w in graded], golds)
    return metrics


@torch.no_grad()
def kl_to(policy, other, tok, prompts: list[list[int]], p: PPOParams, batch_size: int = 32) -> float:
    """Mean over sampled responses of sum_t log(pi(y_t) / other(y_t)): the policy's KL to `other`."""
    total = 0.0
    for i in range(0, len(prompts), batch_size):
        chunk = prompts[i : i + batch_size]
        sampled = decode(policy, tok, chunk, p.max_new_tokens, temperature=p.temperature)
        ids, mask, response_mask, q = batch_tensors(tok, chunk, sampled.responses)
        device = next(policy.parameters()).device
        ids, mask, response_mask = ids.to(device), mask.to(device), response_mask.to(device)
        other_logp = response_logprobs(other, ids, mask, q, p.temperature)
        total += ((sampled.logprobs.to(device) - other_logp) * response_mask).sum().item()
    return total / max(len(prompts), 1)


@torch.no_grad()
def perplexity(model: torch.nn.Module, blocks: list[dict], batch_size: int = 32) -> float:
    """exp(mean token loss) over held-out blocks: the alignment tax is measured with this."""
    model.eval()
    total = count = 0.0
    for i in range(0, len(blocks), batch_size):
        batch = to_device(collate_blocks(blocks[i : i + batch_size]), model)
        loss, n = lm_loss(model(input_ids=batch["input_ids"]).logits, batch["labels"])
        total, count = total + loss.item() * n, count + n
    return float(torch.exp(torch.tensor(total / max(count, 1))))
