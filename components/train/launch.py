"""Running a training stage on several processes with `accelerate launch`.

On CPU, `accelerate launch --cpu` silently runs one process; `--multi_gpu --num_processes N`
with `Accelerator(cpu=True)` in the script (what training.py does without CUDA) runs N
processes over gloo. On GPUs the same command gives DDP over NCCL; FSDP or DeepSpeed come
from an accelerate config file (ACCELERATE_CONFIG_FILE).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from components.params import Params, params_file
from components.ports import free_port


def inside_launch() -> bool:
    return "LOCAL_RANK" in os.environ or "RANK" in os.environ


def launch_command(stage: str, params_file: Path, params: Params) -> list[str]:
    r = params.resources
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1"]
    if config := os.environ.get("ACCELERATE_CONFIG_FILE"):
        cmd += ["--config_file", config]
    cmd += [
        "--num_processes",
        str(r.processes_for(stage)),
        "--mixed_precision",
        r.mixed_precision,
        "--dynamo_backend",
        "no",
    ]
    cmd += ["--multi_gpu", "--main_process_ip", "127.0.0.1", "--main_process_port", str(free_port())]
    return cmd + ["-m", "components.cli", "stage", stage, "--params", str(params_file)]


def launch(stage: str, params: Params, root: Path, metrics_path: Path) -> dict:
    """Run `instructflow stage STAGE` under accelerate launch with these exact params; return its metrics."""
    with params_file(params) as path:
        env = {**os.environ, "OMP_NUM_THREADS": str(params.resources.threads)}
        result = subprocess.run(launch_command(stage, path, params), cwd=root, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{stage}: accelerate launch exited with {result.returncode}")
    return json.loads(metrics_path.read_text(encoding="utf-8"))
