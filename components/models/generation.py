"""Answering prompts with a causal LM: left padding, the KV cache, stop at end-of-sequence."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from components.models.model import context_length
from components.models.text import pad_left, prompt_ids


def chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@torch.no_grad()
def generate_ids(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    prompts: Sequence[list[int]],
    max_new_tokens: int,
    temperature: float = 0.0,
    generator_seed: int | None = None,
) -> list[list[int]]:
    """New token ids per prompt, cut after the first end-of-sequence (kept), greedy when temperature is 0."""
    context = context_length(model.config, 0)
    limit = (context - max_new_tokens) if context else None
    rows = [p[-limit:] if limit else p for p in prompts]
    ids = pad_left(rows, tok.pad_token_id).to(model.device)
    mask = pad_left([[1] * len(r) for r in rows], 0).to(model.device)
    if generator_seed is not None:
        torch.manual_seed(generator_seed)
    sampling = {"temperature": temperature, "top_k": 0, "top_p": 1.0} if temperature else {}
    out = model.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=max_new_tokens,
        do_sample=bool(temperature),
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        use_cache=True,
        **sampling,
    )
    answers = []
    for row in out[:, ids.shape[1] :].tolist():
        end = row.index(tok.eos_token_id) + 1 if tok.eos_token_id in row else len(row)
        answers.append([t for t in row[:end] if t != tok.pad_token_id])
    return answers


def answer(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    conversations: Sequence[list[dict]],
    max_new_tokens: int,
    batch_size: int = 32,
) -> list[str]:
    """Greedy answers to conversations, as text without the end-of-sequence token."""
    return answer_ids(model, tok, [prompt_ids(tok, m) for m in conversations], max_new_tokens, batch_size)


def answer_ids(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    prompts: Sequence[list[int]],
    max_new_tokens: int,
    batch_size: int = 32,
) -> list[str]:
    """Greedy answers to already tokenised prompts, as text."""
    model.eval()
    texts: list[str] = []
    for batch in chunks(prompts, batch_size):
        new = generate_ids(model, tok, batch, max_new_tokens)
        texts.extend(tok.decode(ids, skip_special_tokens=True).strip() for ids in new)
    return texts
