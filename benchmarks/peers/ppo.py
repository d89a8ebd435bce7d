"""PPO side by side: our rollout + update against trl 1.12's PPOTrainer on the same case.

Same model (the params' shape, randomly initialised), tokenizer, prompts (the world's, in the
same order), batch 64, minibatch 16, 1 epoch, 48 new tokens, temperature, KL and clipping
settings, one torch thread each, no ptx term. Runs alternate (ours, TRL, ours, TRL, ...), each
in a fresh process, and the medians are compared. Prints one JSON line.

    ./benchmarks/peers/setup.sh                 # once: TRL in virtual environments of its own
    python -m benchmarks.peers.ppo              # 256 episodes, 2 rounds
    python -m benchmarks.peers.ppo --episodes 128 --rounds 1
    python -m benchmarks.peers.ppo --trained . --episodes 1024   # the trained SFT policy and RM
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

from benchmarks.common import benchmark_params
from benchmarks.peers import drive
from benchmarks.peers.case import write_case

HERE = Path(__file__).parent
PEER = HERE / ".venvs" / "trl-1.12" / "bin" / "python"

# What still differs between the sides, by design of each library (printed with the result).
MISMATCHES = [
    "optimizers: ours a policy AdamW at ppo.lr and a value AdamW at ppo.value_lr, betas 0.9/0.95; "
    "TRL one AdamW (betas 0.9/0.999) over policy and value at ppo.lr",
    "gradient clipping: ours clips at ppo.grad_clip; TRL's PPOTrainer does not clip",
    "advantages: ours whitens them and clips the RM score at ppo.reward_clip; TRL whitens, no score clip",
    "lr schedule: ours constant (no warmup here; the ppo stage warms up over ppo.warmup_steps); TRL linear from lr "
    "to 0 over the rollout batches, stepped once a batch (batch i of n at lr * (1 - i/n))",
    "prompt order: each side shuffles the prompts with its own seeded permutation (the same prompts, "
    "another order), so the reward gains (last quarter of batches minus first) are of different episodes",
    "sampling: ours by inverse CDF, TRL by generate()'s torch.multinomial (the same distribution)",
]


def models_label(case: Path | None, trained: Path | None) -> str:
    if case:
        return f"the case folder {case}"
    return f"trained ({trained})" if trained else "random, the params' shape"


def main(
    episodes: int = 256, rounds: int = 2, case: Path | None = None, trained: Path | None = None, costs: bool = False
) -> dict:
    """COSTS: one more TRL run per TRL default both sides run without (bf16, gradient checkpointing)."""
    if not PEER.exists():
        sys.exit(f"{PEER} is missing: run benchmarks/peers/setup.sh first")
    params = benchmark_params()
    settings = params.ppo.model_dump(include={
        "seed", "batch_size", "minibatch_size", "epochs", "max_new_tokens", "temperature", "lr", "kl_coef",
        "kl_estimator", "clip", "value_clip", "vf_coef", "gamma", "lam", "missing_eos_penalty",
    })  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folder = case or write_case(Path(tmp) / "case", params, episodes, trained=trained)
        ours_cmd = [sys.executable, "-m", "benchmarks.peers.ours_ppo", str(folder), "--episodes", str(episodes)]
        trl_cmd = [str(PEER), str(HERE / "trl_ppo.py"), str(folder), "--episodes", str(episodes)]
        trl_cmd += ["--settings", json.dumps(settings)]
        ours, peer = drive.alternate(ours_cmd, trl_cmd, rounds)
        rate = {"ours": drive.median(ours, "episodes_per_second"), "trl": drive.median(peer, "episodes_per_second")}
        changed = drive.defaults_changed(trl_cmd, "episodes_per_second", rate["trl"], costs)
    result = {
        "benchmark": "ppo_vs_trl",
        "value": round(rate["ours"] / rate["trl"], 2),
        "unit": "x TRL's episodes/s",
        "ours_episodes_per_second": round(rate["ours"], 2),
        "trl_episodes_per_second": round(rate["trl"], 2),
        "ours_reward_gain": [round(r["reward_gain"], 3) for r in ours],
        "trl_reward_gain": [round(r["reward_gain"], 3) for r in peer if r["reward_gain"] is not None],
        "ours_rm_score_gain": [round(r["rm_score_gain"], 3) for r in ours],  # without the missing-EOS penalty
        "ours_runs": [round(r["episodes_per_second"], 2) for r in ours],
        "trl_runs": [round(r["episodes_per_second"], 2) for r in peer],
        "trl": peer[0]["side"],
        "transformers": peer[0]["transformers"],
        "episodes": episodes,
        "models": models_label(case, trained),
        "settings": settings,
        "trl_batches": peer[0]["batches"],  # as TRL resolved them: rollout 64, minibatch 16
        "trl_defaults_changed": changed,
        "model": f"{params.model.n_layer}x{params.model.n_embd}",
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "mismatches": MISMATCHES,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--case", type=Path)
    parser.add_argument("--trained", type=Path, help="a project folder after `dvc repro`: its SFT policy and RM")
    parser.add_argument("--default-costs", action="store_true", help="one more TRL run per default it ran without")
    parser.add_argument("--tiny", action="store_true", help="64 episodes (one batch), 1 round: a check that it runs")
    args = parser.parse_args()
    if args.tiny:
        main(64, 1, args.case, args.trained)
    else:
        main(args.episodes, args.rounds, args.case, args.trained, args.default_costs)
