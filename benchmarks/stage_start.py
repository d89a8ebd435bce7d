"""Stage start: `instructflow stage validate` in a fresh interpreter against a fork of the stage daemon.

`dvc repro` and a worker's stage deployments start one `instructflow stage` per stage. Validate
on tiny data is about a second of work, so what differs between the two ways is the start:
importing torch, transformers, MLflow and Great Expectations in a fresh interpreter, or forking the
daemon that imported them (components/daemon.py). The first command finds no daemon: it starts
one and runs its stage itself; the second waits for whatever of the daemon's imports is left.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.common import report
from components.params import Params, load_params
from components.world.generate import run_generate

COLD = ["--set", "orchestration.warm_idle_s=0"]
WARM = ["--set", "orchestration.warm_idle_s=10"]  # the benchmark's daemon goes soon after


def stage_seconds(root: Path, options: list[str]) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "components.cli", "stage", "validate", *options],
                   cwd=root, env=env, check=True, capture_output=True)  # fmt: skip
    return time.perf_counter() - start


def main(params: Params | None = None, repeats: int = 3) -> None:
    params = params or load_params("params.yaml", ["data.scale=0.005", "data.corpus_docs=300"])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run_generate(params, root / "data")
        (root / "params.yaml").write_text(yaml.safe_dump(params.model_dump(by_alias=True), sort_keys=False))
        cold = [stage_seconds(root, COLD) for _ in range(repeats)]
        first, second = stage_seconds(root, WARM), stage_seconds(root, WARM)
        warm = [stage_seconds(root, WARM) for _ in range(repeats)]
    cold_s, warm_s = sum(cold) / repeats, sum(warm) / repeats
    report("stage_start_speedup", cold_s / warm_s, "x", fresh_interpreter_s=round(cold_s, 2),
           first_s=round(first, 2), second_s=round(second, 2), daemon_s=round(warm_s, 2),
           repeats=repeats)  # fmt: skip


if __name__ == "__main__":
    main()
