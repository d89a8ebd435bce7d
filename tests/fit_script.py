"""A small fit on fixed data, run by tests in one process or under `accelerate launch` (two)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel

from components.params import ResourcesParams, TrainParams
from components.tracking import Tracker, is_main_process
from components.train.core import fit
from components.train.pretrain import collate_blocks, lm_step


def tiny_model(dropout: float) -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=50,
        n_positions=16,
        n_embd=16,
        n_layer=1,
        n_head=2,
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
    )
    return GPT2LMHeadModel(config)


def blocks(n: int = 32) -> list[dict]:
    g = torch.Generator().manual_seed(1)
    return [{"input_ids": torch.randint(0, 50, (16,), generator=g).tolist()} for _ in range(n)]


def run(out: Path, run_dir: Path, dropout: float = 0.0, stop_after: int | None = None, **train: object) -> dict:
    params = TrainParams(epochs=2, batch_size=8, lr=1e-2, checkpoint_every=2, log_every=1, **train)
    model, result = fit(
        tiny_model(dropout),
        blocks(),
        collate_blocks,
        lm_step,
        params,
        ResourcesParams(),
        run_dir,
        Tracker(active=False),
        "fixed",
        stop_after=stop_after,
    )
    if is_main_process():
        save_file({k: v.contiguous() for k, v in model.state_dict().items() if "lm_head" not in k}, str(out))
    return {"steps": result.steps, "loss": result.last_loss}


if __name__ == "__main__":
    run(Path(sys.argv[1]), Path(sys.argv[2]))
