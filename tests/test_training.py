"""The training core: resume equals uninterrupted, two processes equal one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from components.launch import free_port
from components.training import Interrupted

from . import fit_script
from .conftest import ROOT, tool_env


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def assert_same(a: Path, b: Path, atol: float = 0.0) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=atol, rtol=0), k


@pytest.mark.parametrize("stop_at", [3, 5])  # mid-epoch (from the step-2 checkpoint) and across an epoch end
def test_a_stopped_run_resumes_to_the_same_weights(tmp_path: Path, stop_at: int) -> None:
    fit_script.run(tmp_path / "straight.safetensors", tmp_path / "a", dropout=0.1)
    with pytest.raises(Interrupted):
        fit_script.run(tmp_path / "unused.safetensors", tmp_path / "b", dropout=0.1, stop_after=stop_at)
    assert (tmp_path / "b" / "state" / "trainer_state.json").exists()
    resumed = fit_script.run(tmp_path / "resumed.safetensors", tmp_path / "b", dropout=0.1)
    assert resumed["steps"] == 8
    assert_same(tmp_path / "straight.safetensors", tmp_path / "resumed.safetensors")
    assert not (tmp_path / "b" / "state").exists(), "a finished run leaves no resume point"


def test_a_checkpoint_of_something_else_is_not_resumed(tmp_path: Path) -> None:
    with pytest.raises(Interrupted):
        fit_script.run(tmp_path / "x.safetensors", tmp_path / "run", stop_after=3)
    from components.params import ResourcesParams, TrainParams
    from components.pretrain import collate_blocks, lm_step
    from components.tracking import Tracker
    from components.training import fit

    params = TrainParams(epochs=2, batch_size=8, lr=1e-2, checkpoint_every=2, log_every=1)
    _, result = fit(
        fit_script.tiny_model(0.0),
        fit_script.blocks(),
        collate_blocks,
        lm_step,
        params,
        ResourcesParams(),
        tmp_path / "run",
        Tracker(active=False),
        "another fingerprint",
    )
    assert result.history[0]["step"] == 1 and result.steps == 8  # started over, from step 0


@pytest.mark.slow
def test_two_processes_train_like_one(tmp_path: Path) -> None:
    """Same global batches, DDP-averaged gradients: the weights agree with one process."""
    fit_script.run(tmp_path / "one.safetensors", tmp_path / "r1")
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_ip",
        "127.0.0.1",
        "--main_process_port",
        str(free_port()),
        str(ROOT / "tests" / "fit_script.py"),
        str(tmp_path / "two.safetensors"),
        str(tmp_path / "r2"),
    ]
    env = {**tool_env(), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    # Only the all-reduce's summation order differs: float noise, amplified a little by Adam.
    assert_same(tmp_path / "one.safetensors", tmp_path / "two.safetensors", atol=1e-4)
