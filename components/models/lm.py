"""Language-model helpers every stage shares: corpus blocks, the LM step, logits and log-probs of a response.

A rollout row is a left-padded prompt followed by a right-padded response; `positions` keeps
position ids blind to the left padding, as generate() does, so the same row scores the same
whatever its padding.
"""

from __future__ import annotations

import torch

from components.models.model import DOC
from components.models.packing import Packing, pack_rows, packed_output, packs_exactly
from components.models.text import IGNORE, lm_loss


def pack(texts: list[str], tok, block: int) -> list[dict]:
    """Documents joined by the document separator and cut into blocks of `block` tokens (GPT style)."""
    stream: list[int] = []
    for text in texts:
        stream += tok(text + DOC, add_special_tokens=False)["input_ids"]
    return [{"input_ids": stream[i : i + block]} for i in range(0, len(stream) - block + 1, block)]


def collate_blocks(batch: list[dict]) -> dict[str, torch.Tensor]:
    ids = torch.tensor([b["input_ids"] for b in batch], dtype=torch.long)
    return {"input_ids": ids, "labels": ids}


def lm_step(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], packed: bool = False
) -> tuple[torch.Tensor, dict[str, float]]:
    """The LM loss of a batch; PACKED runs it on the batch's real tokens alone (models/packing.py) where exact."""
    ids, mask = batch["input_ids"], batch.get("attention_mask")
    if packed and mask is not None and packs_exactly(getattr(model, "module", model)):
        p = pack_rows(ids, mask)
        labels = batch["labels"][mask.bool()].clone()
        labels[p.bounds[:-1].long()] = IGNORE  # a sequence's first token is no target (it follows another's last)
        loss, n = lm_loss(packed_output(model, p), labels[None])
    else:
        loss, n = lm_loss(model(input_ids=ids, attention_mask=mask).logits, batch["labels"])
    return loss, {"tokens": ids.numel(), "examples": len(ids), "target_tokens": n}


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that ignore left padding, as generate() uses them."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def lm_logits(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return model(input_ids=ids, attention_mask=mask, position_ids=positions(mask)).logits


def response_slice(x: torch.Tensor, q: int) -> torch.Tensor:
    """Outputs at the positions that predict response tokens (position q-1 predicts token q)."""
    return x[:, q - 1 : -1]


def response_logits(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, q: int) -> torch.Tensor:
    """response_slice of the logits, the output layer applied at those positions alone (not the prompt's)."""
    keep = ids.shape[1] - q + 1
    return model(input_ids=ids, attention_mask=mask, position_ids=positions(mask), logits_to_keep=keep).logits[:, :-1]


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float) -> torch.Tensor:
    """log p(token) under logits divided by the sampling temperature (as in the rollout).

    The token's logit minus the log-sum-exp: no (batch, length, vocabulary) tensor of log-probs is kept.
    """
    if temperature != 1.0:
        logits = logits / temperature
    return torch.gather(logits, 2, tokens.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def response_logprobs(
    model: torch.nn.Module,
    ids: torch.Tensor,
    mask: torch.Tensor,
    q: int,
    temperature: float,
    packing: Packing | None = None,
) -> torch.Tensor:
    """log p of each response token (ids[:, q:]) given what precedes it; from the packed row when PACKING is given.

    Packed, the output layer runs at the positions that predict a response token alone: the
    prompts' positions need none (transformers' `logits_to_keep` takes their indices).
    """
    if packing is None:
        return token_logprobs(response_logits(model, ids, mask, q), ids[:, q:], temperature)
    real = packing.mask[:, q:].bool()  # (B, T): the response tokens there are
    predicting = packing.where[:, q - 1 : -1][real]  # their predecessors' places in the packed row
    logits = packed_output(model, packing, logits_to_keep=predicting)
    logp = token_logprobs(logits, packing.ids[:, predicting + 1], temperature)[0]
    return torch.zeros(real.shape, dtype=logp.dtype, device=logp.device).masked_scatter(real, logp)
