"""A small fit on fixed data, run by tests in one process or under `accelerate launch` (two)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel

from components.models.lm import collate_blocks, lm_step
from components.params import ResourcesParams, TrainParams
from components.tracking import Tracker, is_main_process
from components.train.core import fit


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


def train_params(**train: object) -> TrainParams:
    """Two epochs of 8 steps, a checkpoint every 2: every knob named, so the test owns its schedule."""
    knobs = {"seed": 0, "epochs": 2, "lr": 1e-2, "batch_size": 8, "grad_accum": 1, "warmup_steps": 0}
    knobs |= {"min_lr_ratio": 0.1, "weight_decay": 0.0, "grad_clip": 1.0, "checkpoint_every": 2, "log_every": 1}
    return TrainParams(**{**knobs, **train})


ONE_PROCESS = ResourcesParams(num_processes=1, processes={}, mixed_precision="no", threads=1, inference_processes=1)


def run(out: Path, run_dir: Path, dropout: float = 0.0, stop_after: int | None = None, **train: object) -> dict:
    params = train_params(**train)
    model, result = fit(
        tiny_model(dropout),
        blocks(),
        collate_blocks,
        lm_step,
        params,
        ONE_PROCESS,
        run_dir,
        Tracker(active=False),
        "fixed",
        stop_after=stop_after,
    )
    if is_main_process():
        save_file({k: v.contiguous() for k, v in model.state_dict().items() if "lm_head" not in k}, str(out))
    return {"steps": result.steps, "loss": result.last_loss, "history": result.history}


if __name__ == "__main__":
    run(Path(sys.argv[1]), Path(sys.argv[2]))
