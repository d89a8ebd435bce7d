"""What the side-by-side drivers share: running a side in a fresh process, alternating the sides,
medians, the versions and the machine. Runs in the project's environment.

Each side is a script that prints one JSON line last on stdout; the drivers never pin a core
(run them under `taskset` yourself) but give every side one torch thread (OMP_NUM_THREADS=1,
and each script sets torch's threads too).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

import torch
import transformers

HERE = Path(__file__).parent
PEERS = HERE / ".venvs"

# TRL's config defaults that both sides run without (the goal: fp32, no gradient checkpointing on CPU):
# name -> (TRL's default, what both sides use). trl_sft.py / trl_rm.py --restore NAME runs with TRL's.
TRL_DEFAULTS_OFF = {"bf16": (True, False), "gradient_checkpointing": (True, False)}

# Where our `fit` (SFT and RM) and transformers' Trainer under TRL differ whatever the stage.
TRAINER_MISMATCHES = [
    "optimizer: ours torch.optim.AdamW as torch picks it (the per-tensor loop on CPU) with betas 0.9/0.95; TRL "
    "transformers' default adamw_torch_fused with betas 0.9/0.999 (eps 1e-8, weight decay 0 on both)",
    "lr schedule: ours cosine from the peak down to min_lr_ratio (0.1) of it; TRL linear to 0 (no warmup on either)",
    "the end of training: ours writes a full-state checkpoint at the epoch's end, TRL its checkpoint at the last "
    "step (model, optimizer, scheduler, RNG); both inside the timed call",
]

UNGROUPED_HELP = "our batches in a plain seeded shuffle, as TRL's, not grouped by length as the stage cuts them"


def batches_mismatch(grouped: bool, items: str) -> str:
    """How the batches are cut on each side: ours as its stage does (GROUPED) or in a plain shuffle."""
    if grouped:
        return (
            f"batches: ours groups {items} of similar length into a step, as the stage does "
            f"(components.train.core.epoch_order: less padding); TRL samples at random and pads a batch to its "
            f"longest (--ungrouped: ours shuffled alike)"
        )
    return f"batches: both shuffle ({items}: ours a seeded permutation, not grouped; TRL its RandomSampler)"


def peer_python(trl: str) -> Path:
    """The interpreter of benchmarks/peers/setup.sh's environment for trl TRL ("1.16", "1.12")."""
    return PEERS / f"trl-{trl}" / "bin" / "python"


def require(python: Path) -> None:
    if not python.exists():
        sys.exit(f"{python} is missing: run benchmarks/peers/setup.sh first")


def run_json(command: list[str]) -> dict:
    """One side's run in a fresh process with one thread; its last stdout line is its JSON."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command[:3])} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def alternate(ours: list[str], peer: list[str], rounds: int) -> tuple[list[dict], list[dict]]:
    """Ours, peer, ours, peer, ...: a slow spell of the machine falls on both sides rather than one."""
    runs: tuple[list[dict], list[dict]] = ([], [])
    for _ in range(rounds):
        runs[0].append(run_json(ours))
        runs[1].append(run_json(peer))
    return runs


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def figures(runs: list[dict], key: str, digits: int = 2) -> list[float | None]:
    return [None if r.get(key) is None else round(r[key], digits) for r in runs]


def defaults_changed(peer: list[str], key: str, rate: float, measure: bool) -> dict:
    """The TRL defaults both sides run without, each as {trl_default, used}; with MEASURE, one more peer
    run per default with that default alone restored, and what it costs: `relative` is that run's KEY
    over RATE, the median KEY of the runs without it (below 1: TRL's default is slower)."""
    changed = {}
    for name, (default, used) in TRL_DEFAULTS_OFF.items():
        changed[name] = {"trl_default": default, "used": used}
        if measure:
            run = run_json([*peer, "--restore", name])
            changed[name] |= {key: round(run[key], 2), "relative": round(run[key] / rate, 3)}
    return changed


def versions(peer_run: dict) -> dict:
    """Both sides' library versions: the same transformers and torch is what makes the model code the same."""
    return {
        "ours": {"torch": torch.__version__, "transformers": transformers.__version__},
        "trl": peer_run["versions"],
    }


def machine() -> dict:
    return {
        "machine": platform.machine(),
        "processor": cpu_name(),
        "cpus": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
    }


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()
