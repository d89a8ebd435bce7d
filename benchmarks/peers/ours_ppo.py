"""Our PPO on a case folder: rollout + update, ppo.* params, no ptx. Prints one JSON line.

python -m benchmarks.peers.ours_ppo CASE --episodes 256
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

from benchmarks.common import benchmark_params
from components.models.model import load_causal_lm, load_tokenizer
from components.models.reward import RewardModel, load_scorer
from components.train.core import adamw, make_accelerator
from components.train.ppo import ValueModel, prompt_batch, rollout, update


def gain(rewards: list[float]) -> float:
    """Mean RM score of the last quarter of the batches minus the first quarter's (one batch each when few)."""
    k = max(1, len(rewards) // 4)
    return sum(rewards[-k:]) / k - sum(rewards[:k]) / k


def main(case: Path, episodes: int) -> dict:
    params = benchmark_params()
    p = params.ppo.model_copy(update={"ptx_coef": 0.0, "episodes": episodes})
    accelerator = make_accelerator(1, params.resources)
    tok = load_tokenizer(case / "policy")
    torch.manual_seed(p.seed)
    policy, ref = load_causal_lm(case / "policy"), load_causal_lm(case / "policy").requires_grad_(False)
    scorer = load_scorer(case / "reward")
    value, reward_model = ValueModel(copy.deepcopy(scorer)), RewardModel(scorer).requires_grad_(False)
    optimizers = [adamw(policy, p.lr), adamw(value, p.value_lr)]
    schedules = [torch.optim.lr_scheduler.LambdaLR(o, lambda s: 1.0) for o in optimizers]
    policy, value, *optimizers = accelerator.prepare(policy, value, *optimizers)
    prompts = json.loads((case / "prompts.json").read_text())
    rewards, raw, lengths = [], [], []
    start = time.perf_counter()
    for it in range(episodes // p.batch_size):
        chunk = prompt_batch(prompts, p, it, 0, 1)  # the stage's seeded shuffle (TRL's dataloader shuffles too)
        batch = rollout(policy, ref, value, reward_model, tok, chunk, p, p.kl_coef)
        update(policy, value, optimizers, schedules, accelerator, batch, None, p, None)
        # TRL's objective/scores: the RM score with the missing-EOS penalty (ours adds ppo.missing_eos_penalty)
        rewards.append(batch.stats["reward"] + p.missing_eos_penalty * batch.stats["no_eos"])
        raw.append(batch.stats["reward"])
        lengths.append(batch.stats["response_length"])
    seconds = time.perf_counter() - start
    return {
        "side": "instructflow",
        "episodes_per_second": episodes / seconds,
        "seconds": seconds,
        "reward_gain": gain(rewards),
        "rm_score_gain": gain(raw),  # the RM's score alone
        "response_length": sum(lengths) / len(lengths),
        "threads": torch.get_num_threads(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", type=Path)
    parser.add_argument("--episodes", type=int, default=256)
    args = parser.parse_args()
    print(json.dumps(main(args.case, args.episodes)))
