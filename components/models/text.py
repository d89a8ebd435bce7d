"""Conversations to token ids: the chat template, prompt masking and padding.

SFT trains on `prompt + completion + eos` with the prompt tokens masked out of the loss;
the reward model scores the same strings; generation feeds the prompt alone, left-padded.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase

IGNORE = -100  # label of tokens that carry no loss (prompt and padding)


def prompt_ids(tok: PreTrainedTokenizerBase, messages: list[dict]) -> list[int]:
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return tok(text, add_special_tokens=False)["input_ids"]


def completion_ids(tok: PreTrainedTokenizerBase, completion: str) -> list[int]:
    """The answer followed by the end-of-sequence token a policy must learn to emit."""
    return tok(completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]


def join(prompt: list[int], completion: list[int], max_len: int) -> tuple[list[int], int]:
    """prompt + completion within max_len: the prompt loses its oldest tokens first.

    Returns the ids and where the completion starts.
    """
    completion = completion[: max_len - 1]
    prompt = prompt[-(max_len - len(completion)) :]
    return prompt + completion, len(prompt)


def sft_example(tok: PreTrainedTokenizerBase, messages: list[dict], completion: str, max_len: int) -> dict:
    ids, start = join(prompt_ids(tok, messages), completion_ids(tok, completion), max_len)
    return {"input_ids": ids, "labels": [IGNORE] * start + ids[start:]}


def pad_right(rows: Sequence[list[int]], value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([list(r) + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def pad_left(rows: Sequence[list[int]], value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([[value] * (width - len(r)) + list(r) for r in rows], dtype=torch.long)


def collate_lm(batch: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input ids, attention mask and labels (padding ignored)."""
    ids = pad_right([b["input_ids"] for b in batch], pad_id)
    mask = pad_right([[1] * len(b["input_ids"]) for b in batch], 0)
    labels = pad_right([b["labels"] for b in batch], IGNORE)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def to_device(batch: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Evaluation batches follow the model (training batches are placed by accelerate)."""
    device = next(model.parameters()).device
    return {k: v.to(device) for k, v in batch.items()}


def lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Mean next-token cross-entropy over labelled tokens; also how many tokens that was."""
    shift_logits, shift_labels = logits[:, :-1], labels[:, 1:]
    n = int((shift_labels != IGNORE).sum())
    loss = torch.nn.functional.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1), ignore_index=IGNORE
    )
    return loss, n


def batch_tensors(tok, prompts: list[list[int]], responses: list[list[int]]) -> tuple[torch.Tensor, ...]:
    query = pad_left(prompts, tok.pad_token_id)
    query_mask = pad_left([[1] * len(p) for p in prompts], 0)
    response = pad_right([r or [tok.pad_token_id] for r in responses], tok.pad_token_id)
    response_mask = pad_right([[1] * len(r) or [0] for r in responses], 0)
    return torch.cat([query, response], 1), torch.cat([query_mask, response_mask], 1), response_mask, query.shape[1]
