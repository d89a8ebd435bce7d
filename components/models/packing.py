"""Padding-free forwards: several sequences share a row, each with position ids from 0.

A rollout batch pads every row to its longest prompt plus its longest response, often twice the
tokens the rows hold. Packing puts the rows' real tokens end to end in rows of that width
(first fit, longest first); position ids that restart at 0 mark where a sequence starts, and
transformers' masking then lets each token attend only to its own sequence (the padding-free
format of `find_packed_sequence_indices`, used when no attention mask is given). Outputs are
mapped back to the padded layout, so callers see the shapes they always did.

A model whose attention ignores that format would mix sequences silently, so `packs_exactly`
checks a model once against its padded forward and callers fall back to padding when not.
"""

from __future__ import annotations

from dataclasses import dataclass
from weakref import WeakKeyDictionary

import torch


@dataclass
class Packing:
    ids: torch.Tensor  # (R, W): the rows' real tokens end to end, padding after the last
    positions: torch.Tensor  # (R, W): 0, 1, ... within each sequence
    where: torch.Tensor  # (B, L): flat index into (R * W) of each padded position (0 where padding)
    mask: torch.Tensor  # (B, L): the padded batch's attention mask

    def unpack(self, packed: torch.Tensor) -> torch.Tensor:
        """(R, W, ...) outputs in the padded (B, L, ...) layout, zero at padding."""
        flat = packed.reshape(-1, *packed.shape[2:])[self.where]
        keep = self.mask.bool().reshape(*self.mask.shape, *([1] * (flat.dim() - 2)))
        return torch.where(keep, flat, torch.zeros((), dtype=flat.dtype, device=flat.device))


def pack_rows(ids: torch.Tensor, mask: torch.Tensor) -> Packing:
    """Pack the rows of a padded batch whose mask is one contiguous run of ones per row.

    The packed rows' padding is token 0: it comes after every sequence of its row, so nothing reads it.
    """
    lengths = mask.sum(1).tolist()
    starts = mask.argmax(1).tolist()
    width = max(max(lengths), 1)
    fill: list[int] = []  # tokens used in each packed row
    slot: list[tuple[int, int]] = [(0, 0)] * len(lengths)  # (packed row, first column) per sequence
    for b in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        row = next((r for r, used in enumerate(fill) if used + lengths[b] <= width), len(fill))
        if row == len(fill):
            fill.append(0)
        slot[b], fill[row] = (row, fill[row]), fill[row] + lengths[b]
    packed_ids = torch.zeros((len(fill), width), dtype=ids.dtype, device=ids.device)
    positions = torch.arange(width, device=ids.device).repeat(len(fill), 1)  # padding continues the last sequence
    where = torch.zeros(mask.shape, dtype=torch.long, device=ids.device)
    for b, ((row, col), n, s) in enumerate(zip(slot, lengths, starts, strict=True)):
        packed_ids[row, col : col + n] = ids[b, s : s + n]
        positions[row, col : col + n] = torch.arange(n, device=ids.device)
        where[b, s : s + n] = torch.arange(row * width + col, row * width + col + n, device=ids.device)
    return Packing(packed_ids, positions, where, mask)


_checked: WeakKeyDictionary[torch.nn.Module, bool] = WeakKeyDictionary()


def packed_output(model: torch.nn.Module, packing: Packing) -> torch.Tensor:
    """MODEL's per-position output over the packed rows, (R, W, ...); no cache, so the packed mask applies."""
    return output(model(input_ids=packing.ids, position_ids=packing.positions, use_cache=False))


@torch.no_grad()
def packs_exactly(model: torch.nn.Module) -> bool:
    """Whether MODEL's packed forward equals its padded one, checked once per model.

    Three sequences, two of them sharing a packed row, one with padding on both sides as a rollout's.
    """
    if model not in _checked:
        g = torch.Generator().manual_seed(0)
        device = next(model.parameters()).device
        ids = torch.randint(3, model.get_input_embeddings().num_embeddings, (3, 7), generator=g).to(device)
        mask = torch.tensor([[1] * 7, [0, 0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 1, 0, 0]], device=device)
        padded = output(model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)))
        p = pack_rows(ids, mask)
        packed = p.unpack(packed_output(model, p))
        m = mask.bool()
        _checked[model] = bool(p.ids.shape[0] == 2 and torch.allclose(padded[m], packed[m], atol=1e-4, rtol=1e-3))
    return _checked[model]


def output(out) -> torch.Tensor:
    """The per-position output of a causal LM (logits) or a backbone (hidden states)."""
    return out.logits if getattr(out, "logits", None) is not None else out.last_hidden_state
