"""SFT training throughput: tokens/s of forward + backward + AdamW on fixed synthetic batches.

python -m benchmarks.sft_throughput        # one JSON line
"""

from __future__ import annotations

import torch

from benchmarks.common import default_model, report, timed
from components.models.text import lm_loss
from components.params import Params

BATCH, LENGTH = 16, 64  # about a default SFT batch: 16 demonstrations of ~64 tokens


def main(params: Params | None = None, repeats: int = 10) -> None:
    model, params = default_model(params=params)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, params.model.vocab_size, (BATCH, LENGTH), generator=g).to(model.device)
    labels = ids.clone()
    labels[:, : LENGTH // 2] = -100  # prompt half masked, as in SFT

    def step() -> int:
        loss, _ = lm_loss(model(input_ids=ids).logits, labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return ids.numel()

    seconds, tokens = timed(step, repeats=repeats)
    report(
        "sft_tokens_per_second",
        tokens / seconds,
        "tokens/s",
        batch=BATCH,
        length=LENGTH,
        model=f"{params.model.n_layer}x{params.model.n_embd}",
    )


if __name__ == "__main__":
    main()
