"""The training core: resume equals uninterrupted, two processes equal one."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from components.errors import StageError
from components.ports import free_port
from components.train.core import Checkpoints, Interrupted, check_gpus_per_process

from . import fit_script
from .conftest import ROOT, two_process_env


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
    from components.models.lm import collate_blocks, lm_step
    from components.tracking import Tracker
    from components.train.core import fit

    params = fit_script.train_params()
    _, result = fit(
        fit_script.tiny_model(0.0),
        fit_script.blocks(),
        collate_blocks,
        lm_step,
        params,
        fit_script.ONE_PROCESS,
        tmp_path / "run",
        Tracker(active=False),
        "another fingerprint",
    )
    assert result.history[0]["step"] == 1 and result.steps == 8  # started over, from step 0


@pytest.mark.slow
def test_two_processes_train_like_one(tmp_path: Path) -> None:
    """Same global batches, DDP-averaged gradients: the weights agree with one process."""
    env = two_process_env()
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    script = str(ROOT / "tests" / "fit_script.py")
    # The one-process reference runs where the two do (the CPU unless there are two GPUs).
    one_cmd = [sys.executable, script, str(tmp_path / "one.safetensors"), str(tmp_path / "r1")]
    one = subprocess.run(one_cmd, env=env, capture_output=True, text=True)
    assert one.returncode == 0, one.stderr[-3000:]
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
        script,
        str(tmp_path / "two.safetensors"),
        str(tmp_path / "r2"),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    # Only the all-reduce's summation order differs: float noise, amplified a little by Adam.
    assert_same(tmp_path / "one.safetensors", tmp_path / "two.safetensors", atol=1e-4)


def test_more_processes_than_gpus_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    check_gpus_per_process()  # one process, one GPU
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with pytest.raises(StageError, match=r"num_processes is 2 but this machine has 1 GPU.*CUDA_VISIBLE_DEVICES="):
        check_gpus_per_process()


class RankAccelerator:
    """Stands in for one process's Accelerator, with threads as processes: what `Checkpoints` calls."""

    def __init__(self, rank: int, barrier: threading.Barrier, slow: float):
        self.rank, self.barrier, self.slow = rank, barrier, slow
        self.is_main_process = rank == 0

    def wait_for_everyone(self) -> None:
        self.barrier.wait(timeout=30)

    def save_state(self, output_dir: str) -> None:
        # as accelerate does: every process makes the folder and writes its random state there
        os.makedirs(output_dir, exist_ok=True)
        time.sleep(self.slow)  # this process is the slower one
        (Path(output_dir) / f"random_states_{self.rank}.pkl").write_bytes(b"rng")


def test_a_checkpoint_holds_every_process_state_when_one_process_is_slower(tmp_path: Path) -> None:
    (tmp_path / "state.tmp").mkdir()
    (tmp_path / "state.tmp" / "random_states_7.pkl").write_bytes(b"left by a crash mid-save")
    barrier, errors = threading.Barrier(2), []

    def save(rank: int) -> None:
        try:
            Checkpoints(tmp_path, "f").save(RankAccelerator(rank, barrier, 0.3 * rank), 4, 1, 0)
        except Exception as error:  # noqa: BLE001 - reported below, from the main thread
            errors.append(error)
            barrier.abort()

    ranks = [threading.Thread(target=save, args=(rank,)) for rank in (0, 1)]
    for thread in ranks:
        thread.start()
    for thread in ranks:
        thread.join()
    assert not errors
    saved = sorted(path.name for path in (tmp_path / "state").iterdir())
    assert saved == ["random_states_0.pkl", "random_states_1.pkl", "trainer_state.json"]
    assert not (tmp_path / "state.tmp").exists()


def test_a_stage_launches_on_its_own_number_of_processes() -> None:
    from components.params import load_params
    from components.train.launch import launch_command

    params = load_params("params.yaml", ["resources.processes.ppo=2", "resources.processes.sft=1"])
    for stage, processes in (("ppo", "2"), ("sft", "1")):
        command = launch_command(stage, Path("params.yaml"), params)
        assert command[command.index("--num_processes") + 1] == processes
