"""Padding-free forwards: a batch's sequences end to end in one row, attention within each sequence.

A rollout batch pads every row to its longest prompt plus its longest response, often twice the
tokens the rows hold. Here the real tokens go end to end in one row with position ids that restart
at 0 for each sequence, so every layer but attention runs on real tokens alone. Attention cannot:
over a row of N tokens a block-diagonal mask costs N x N where the sequences need only the sum of
their squares. So attention is ours, registered with transformers' AttentionInterface: it lays each
sequence's queries, keys and values out in a right-padded (sequences, longest) batch and runs causal
SDPA, under which no real token sees the padding after it, then puts the outputs back in the row.
The sequences' bounds travel as flash attention's varlen arguments (`cu_seq_lens_q`), which
transformers' models hand to their attention function; a model already on flash attention uses
them as they are. Outputs are mapped back to the padded layout, so callers see the shapes they
always did.

A model whose attention ignores that format would mix sequences silently, so `packs_exactly`
checks a model once against its padded forward and callers fall back to padding when not.
"""

from __future__ import annotations

from dataclasses import dataclass
from weakref import WeakKeyDictionary

import torch
import torch.nn.functional as F
from transformers import AttentionInterface

from components.models.model import attention_switched

ATTENTION = "instructflow_sequences"
VARLEN = ("flash_attention_2", "flash_attention_3", "flash_attention_4")  # read cu_seq_lens themselves


class NotPackable(RuntimeError):
    """The model's attention needs what the packed format does not carry (a window, a soft cap, the bounds)."""


@dataclass
class Packing:
    ids: torch.Tensor  # (1, N): the sequences' real tokens end to end
    positions: torch.Tensor  # (1, N): 0, 1, ... within each sequence
    bounds: torch.Tensor  # (B + 1,) int32: where each sequence starts in the row, then N
    longest: int
    where: torch.Tensor  # (B, L): index into the row of each padded position (0 where padding)
    mask: torch.Tensor  # (B, L): the padded batch's attention mask

    def unpack(self, packed: torch.Tensor) -> torch.Tensor:
        """(1, N, ...) outputs in the padded (B, L, ...) layout, zero at padding."""
        flat = packed[0][self.where]
        keep = self.mask.bool().reshape(*self.mask.shape, *([1] * (flat.dim() - 2)))
        return torch.where(keep, flat, torch.zeros((), dtype=flat.dtype, device=flat.device))

    def varlen(self) -> dict:
        """The bounds as transformers' flash-attention keyword arguments."""
        return {
            "cu_seq_lens_q": self.bounds,
            "cu_seq_lens_k": self.bounds,
            "max_length_q": self.longest,
            "max_length_k": self.longest,
        }


def pack_rows(ids: torch.Tensor, mask: torch.Tensor) -> Packing:
    """Pack the rows of a padded batch whose mask is one contiguous run of ones per row."""
    real = mask.bool()
    lengths = real.sum(1)
    where = torch.zeros(mask.shape, dtype=torch.long, device=ids.device)
    where[real] = torch.arange(int(lengths.sum()), device=ids.device)
    return Packing(
        ids=ids[real][None],
        positions=(real.cumsum(1) - 1)[real][None],
        bounds=F.pad(lengths.cumsum(0), (1, 0)).to(torch.int32),
        longest=max(int(lengths.max()), 1) if len(lengths) else 1,
        where=where,
        mask=mask,
    )


def sequence_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """Causal attention within each sequence of a packed row: (1, heads, N, dim) in, (1, N, heads, dim) out."""
    bounds = kwargs.get("cu_seq_lens_q")
    if bounds is None or kwargs.get("sliding_window") or kwargs.get("softcap"):
        raise NotPackable("the attention call carries no sequence bounds, or needs a window or a soft cap")
    lengths = (bounds[1:] - bounds[:-1]).long()
    offsets = torch.arange(int(kwargs["max_length_q"]), device=query.device)
    real = offsets[None] < lengths[:, None]  # (B, longest)
    slots = real.flatten().nonzero().squeeze(1)

    def lay_out(x: torch.Tensor) -> torch.Tensor:  # (1, h, N, d) -> (B, h, longest, d), zeros after each end
        rows = x[0].transpose(0, 1)
        grid = rows.new_zeros(real.numel(), *rows.shape[1:]).index_copy(0, slots, rows)
        return grid.view(*real.shape, *rows.shape[1:]).transpose(1, 2)

    q, k, v = lay_out(query), lay_out(key), lay_out(value)
    out = F.scaled_dot_product_attention(
        q, k, v, is_causal=True, scale=scaling, dropout_p=dropout, enable_gqa=k.shape[1] != q.shape[1]
    )
    out = out.transpose(1, 2)  # (B, longest, h, d)
    return out.reshape(-1, *out.shape[2:]).index_select(0, slots)[None], None


AttentionInterface.register(ATTENTION, sequence_attention)


def attention_within_sequences(model: torch.nn.Module):
    """MODEL's attention switched to `sequence_attention` for the packed forward (flash attention keeps its own)."""
    before = getattr(getattr(model, "config", None), "_attn_implementation", None)
    return attention_switched(model, ATTENTION, before not in VARLEN and hasattr(model, "set_attn_implementation"))


_checked: WeakKeyDictionary[torch.nn.Module, bool] = WeakKeyDictionary()


def packed_output(model: torch.nn.Module, packing: Packing, **kwargs) -> torch.Tensor:
    """MODEL's per-position output over the packed row, (1, N, ...); no cache, which would build a mask."""
    with attention_within_sequences(getattr(model, "module", model)):  # a DDP wrapper's model
        out = model(
            input_ids=packing.ids, position_ids=packing.positions, use_cache=False, **packing.varlen(), **kwargs
        )
    return output(out)


@torch.no_grad()
def packs_exactly(model: torch.nn.Module) -> bool:
    """Whether MODEL's packed forward equals its padded one, checked once per model.

    Three sequences of unlike lengths, one with padding on both sides as a rollout's.
    """
    if model not in _checked:
        g = torch.Generator().manual_seed(0)
        device = next(model.parameters()).device
        ids = torch.randint(3, model.get_input_embeddings().num_embeddings, (3, 7), generator=g).to(device)
        mask = torch.tensor([[1] * 7, [0, 0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 1, 0, 0]], device=device)
        training = model.training
        model.eval()  # dropout would make the two differ
        padded = output(model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)))
        p = pack_rows(ids, mask)
        try:
            packed = p.unpack(packed_output(model, p))
        except (NotPackable, TypeError, ValueError):  # a model that takes no varlen arguments or cannot switch
            packed = None
        model.train(training)
        m = mask.bool()
        _checked[model] = packed is not None and torch.allclose(padded[m], packed[m], atol=1e-4, rtol=1e-3)
    return _checked[model]


def output(out) -> torch.Tensor:
    """The per-position output of a causal LM (logits) or a backbone (hidden states)."""
    return out.logits if getattr(out, "logits", None) is not None else out.last_hidden_state
