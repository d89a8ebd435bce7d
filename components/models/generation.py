"""Answering prompts with a causal LM: left padding, the KV cache, stop at end-of-sequence.

One decoding loop serves greedy answers and sampling. It is ours rather than `generate()`
because PPO needs each sampled token's log-prob and the entropy at the sampling temperature,
which `generate()` gives only by keeping every step's logits over the whole vocabulary; and
because its sampler (`torch.multinomial`) draws an exponential variate per vocabulary entry
per token, where one uniform per row and the cumulative distribution suffice. The forward
call is the model's own, with the library's cache, so any causal LM of transformers works.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase
from transformers.cache_utils import DynamicLayer, StaticLayer

from components.forks import map_shares, usable
from components.models.model import attention_switched, context_length
from components.models.text import pad_left, prompt_ids


def chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@dataclass
class Decoded:
    """New tokens per prompt and, per generated position, log p(token) and the entropy (0 after the end)."""

    responses: list[list[int]]  # cut after the first end-of-sequence (kept)
    logprobs: torch.Tensor  # (B, T), T the longest response: at the sampling temperature
    entropy: torch.Tensor  # (B, T)


def pick(logp: torch.Tensor, temperature: float) -> torch.Tensor:
    """The next token of each row: the most likely when greedy, else drawn by inverse CDF (one uniform per row)."""
    if not temperature:
        return logp.argmax(-1)
    cdf = logp.exp().cumsum(-1)
    u = torch.rand(cdf.shape[0], 1, device=cdf.device) * cdf[:, -1:]  # scaled: rounding never passes the end
    return torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp_(max=cdf.shape[-1] - 1)


@torch.no_grad()
def decode(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    prompts: Sequence[list[int]],
    max_new_tokens: int,
    temperature: float = 0.0,
    generator_seed: int | None = None,
) -> Decoded:
    """Greedy (temperature 0) or sampled continuations of left-padded prompts, stopping when all have ended.

    A row leaves the batch (and the cache) once it has ended, so later steps run on the rows
    still writing: the shortest answers stop costing as soon as they are done.
    """
    context = context_length(model.config, 0)
    limit = (context - max_new_tokens) if context else None
    rows = [p[-limit:] if limit else p for p in prompts]
    n = len(rows)
    tokens = torch.full((n, max(max_new_tokens, 0)), tok.pad_token_id, dtype=torch.long)
    logprobs, entropy = torch.zeros(tokens.shape), torch.zeros(tokens.shape)
    if max_new_tokens < 1:
        return Decoded([[] for _ in rows], logprobs, entropy)
    device = model.device
    ids = pad_left(rows, tok.pad_token_id).to(device)
    mask = pad_left([[1] * len(r) for r in rows], 0).to(device)
    if generator_seed is not None:
        torch.manual_seed(generator_seed)
    cache = reserved_cache(model, ids.shape[1] + max_new_tokens)
    position = (mask.cumsum(-1) - 1).clamp(min=0)  # blind to the left padding (models/lm.py's positions)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=position, cache=cache, logits_to_keep=1).logits
    live = torch.arange(n)  # the rows of the batch still in the cache
    with one_token_attention(model):
        for t in range(max_new_tokens):
            logp = F.log_softmax(logits[:, -1].float() / (temperature or 1.0), dim=-1)
            token = pick(logp, temperature)
            tokens[live, t] = token.cpu()
            logprobs[live, t] = logp.gather(1, token[:, None]).squeeze(1).cpu()
            entropy[live, t] = (-(logp.exp() * logp).sum(-1)).cpu()
            going = token != tok.eos_token_id
            if not going.any() or t + 1 == max_new_tokens:
                break
            if not going.all():
                keep = going.nonzero().squeeze(1)
                cache.batch_select_indices(keep)
                live, token, mask, position = live[keep.cpu()], token[keep], mask[keep], position[keep]
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
            position = position[:, -1:] + 1
            logits = model(input_ids=token[:, None], attention_mask=mask, position_ids=position, cache=cache).logits
    responses = [cut(row, tok.eos_token_id) for row in tokens.tolist()]
    width = max(len(r) for r in responses)
    return Decoded(responses, logprobs[:, :width], entropy[:, :width])


class ReservedLayer(StaticLayer):
    """The library's static layer, whose rows can leave the batch.

    The default layer concatenates at every step, copying the whole cache each time; a static one
    writes each step in place, and attention runs over the reserved length with the unwritten part
    masked, on contiguous storage (a view of the written part would slow the batched matmuls).
    """

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.is_initialized:
            self.keys, self.values = self.keys[indices], self.values[indices]


def reserved_cache(model: PreTrainedModel, capacity: int) -> DynamicCache:
    """The model's cache layout (sliding windows kept), its full-attention layers reserved for CAPACITY positions."""
    cache = DynamicCache(config=model.config)
    cache.layers = [ReservedLayer(capacity) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


def one_token_attention(model: PreTrainedModel):
    """Eager attention for the one-query steps on a CPU.

    torch's CPU flash kernel costs more per call than the two small matmuls it replaces there.
    """
    can_switch = getattr(model, "_can_set_attn_implementation", lambda: False)  # a private hook of transformers 5
    cpu_sdpa = model.device.type == "cpu" and model.config._attn_implementation == "sdpa"
    return attention_switched(model, "eager", cpu_sdpa and can_switch())


def cut(row: list[int], eos: int) -> list[int]:
    return row[: row.index(eos) + 1] if eos in row else row


def generate_ids(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    prompts: Sequence[list[int]],
    max_new_tokens: int,
    temperature: float = 0.0,
    generator_seed: int | None = None,
) -> list[list[int]]:
    """New token ids per prompt, cut after the first end-of-sequence (kept), greedy when temperature is 0."""
    return decode(model, tok, prompts, max_new_tokens, temperature, generator_seed).responses


def answer(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    conversations: Sequence[list[dict]],
    max_new_tokens: int,
    batch_size: int = 32,
    processes: int = 1,
) -> list[str]:
    """Greedy answers to conversations, as text without the end-of-sequence token."""
    prompts = [prompt_ids(tok, m) for m in conversations]
    return answer_ids(model, tok, prompts, max_new_tokens, batch_size, processes)


def answer_ids(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    prompts: Sequence[list[int]],
    max_new_tokens: int,
    batch_size: int = 32,
    processes: int = 1,
) -> list[str]:
    """Greedy answers to already tokenised prompts, as text, in the prompts' order.

    Batches hold prompts of similar length (less left padding to run); a greedy answer does not
    depend on its batch (left padding is invisible to it), so neither the order nor the split
    over PROCESSES (forked, components/forks.py) changes anything.
    """
    if (n := usable(processes, model.device)) > 1:
        return map_shares(lambda share: answer_ids(model, tok, share, max_new_tokens, batch_size), prompts, n)
    model.eval()
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    texts: list[str] = [""] * len(prompts)
    for batch in chunks(order, batch_size):
        new = generate_ids(model, tok, [prompts[i] for i in batch], max_new_tokens)
        for i, ids in zip(batch, new, strict=True):
            texts[i] = tok.decode(ids, skip_special_tokens=True).strip()
    return texts
