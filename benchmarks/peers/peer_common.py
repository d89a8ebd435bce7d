"""What the TRL-side scripts share. Runs in a peer's environment and imports nothing of the project's:
each helper here is the few lines of torch a user of TRL would write for the same figure.

The held-out figures score the case's own token ids (our sft_example / comparison_example output),
so both sides are measured on the same inputs; each script checks that TRL's tokenisation of the
training texts gives those ids and reports the rows where it does not.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from pathlib import Path

import torch

IGNORE = -100


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def set_dropout(model: torch.nn.Module, p: float) -> None:
    """Every dropout module at P, as our sft stage loads its model (the saved config has none)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p


def pad_right(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([list(r) + [value] * (width - len(r)) for r in rows], dtype=torch.long)


@torch.no_grad()
def completion_loss(model, rows: list[dict], pad_id: int, batch_size: int = 32) -> float:
    """Mean loss per completion token over ROWS' input_ids and labels (prompt labels IGNORE)."""
    model.eval()
    total = count = 0.0
    for i in range(0, len(rows), batch_size):
        chunk = rows[i : i + batch_size]
        ids = pad_right([r["input_ids"] for r in chunk], pad_id)
        mask = pad_right([[1] * len(r["input_ids"]) for r in chunk], 0)
        labels = pad_right([r["labels"] for r in chunk], IGNORE)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
        targets = labels[:, 1:]
        n = int((targets != IGNORE).sum())
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
        total, count = total + loss.item() * n, count + n
    return total / max(count, 1)


@torch.no_grad()
def rewards(model, sequences: list[list[int]], pad_id: int, batch_size: int = 64) -> list[float]:
    """The scalar head's score of each sequence (it pools at the last non-pad token)."""
    model.eval()
    out: list[float] = []
    for i in range(0, len(sequences), batch_size):
        chunk = sequences[i : i + batch_size]
        ids, mask = pad_right(chunk, pad_id), pad_right([[1] * len(s) for s in chunk], 0)
        out += model(input_ids=ids, attention_mask=mask).logits.squeeze(-1).tolist()
    return out


def pair_accuracy(records: list[dict], scores: list[list[float]]) -> float | None:
    """Share of untied pairs whose better-ranked completion (rank 1 is best) scores higher; a tie in score is wrong."""
    right = total = 0
    for record, r in zip(records, scores, strict=True):
        ranks = record["ranks"]
        for i, j in itertools.combinations(range(len(ranks)), 2):
            if ranks[i] != ranks[j]:
                total += 1
                right += (r[i] - r[j]) * (ranks[j] - ranks[i]) > 0
    return right / total if total else None


def resolved(args) -> dict:
    """The TrainingArguments defaults that differ from ours, as this TRL resolved them."""
    return {
        "optim": str(args.optim),
        "lr_scheduler": str(args.lr_scheduler_type),
        "betas": [args.adam_beta1, args.adam_beta2],
        "bf16": args.bf16,
        "gradient_checkpointing": args.gradient_checkpointing,
    }


def versions() -> dict:
    import datasets
    import transformers
    import trl

    libraries = {"trl": trl, "transformers": transformers, "torch": torch, "datasets": datasets}
    return {name: module.__version__ for name, module in libraries.items()}
