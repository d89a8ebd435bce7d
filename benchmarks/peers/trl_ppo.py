"""TRL's PPOTrainer (trl 1.12, trl.experimental.ppo) on a case folder. Prints one JSON line.

Runs in benchmarks/peers/.venvs/trl-1.12 and imports nothing of the project's. The settings are
the project's ppo.* defaults where both sides have the knob (passed on the command line by
benchmarks/peers/ppo.py); the rest are TRL's defaults, except num_sample_generations (TRL samples
its evaluation set 10 times a run by default; off, as we pass none) and report_to.

    .venvs/trl-1.12/bin/python trl_ppo.py CASE --episodes 256 --settings '{...}'
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback
from trl.experimental.ppo import PPOConfig, PPOTrainer


class Scores(TrainerCallback):
    """TRL logs the mean RM score of each rollout batch as objective/scores."""

    def __init__(self) -> None:
        self.scores: list[float] = []
        self.lengths: list[float] = []

    def on_log(self, args, state, control, logs=None, **kwargs) -> None:
        if logs and "objective/scores" in logs:
            self.scores.append(logs["objective/scores"])


def gain(rewards: list[float]) -> float:
    """Mean RM score of the last quarter of the batches minus the first quarter's (ours_ppo.py's statistic)."""
    k = max(1, len(rewards) // 4)
    return sum(rewards[-k:]) / k - sum(rewards[:k]) / k


# TRL defaults both sides run without -> the settings that restore it (use_cpu is set already: see trl_sft.py).
DEFAULTS = {"bf16": {"bf16": None}, "gradient_checkpointing": {"gradient_checkpointing": True}}


def main(case: Path, episodes: int, s: dict, restore: str | None = None) -> dict:
    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(case / "policy", padding_side="left")
    policy = AutoModelForCausalLM.from_pretrained(case / "policy")
    ref = AutoModelForCausalLM.from_pretrained(case / "policy")
    reward = AutoModelForSequenceClassification.from_pretrained(case / "reward")
    value = AutoModelForSequenceClassification.from_pretrained(case / "reward")
    prompts = json.loads((case / "prompts.json").read_text())[:episodes]
    scores = Scores()
    off = {"bf16": False, "fp16": False, "gradient_checkpointing": False}
    if restore:
        off.update(DEFAULTS[restore])
    with tempfile.TemporaryDirectory() as out:
        config = PPOConfig(
            output_dir=out,
            # TRL's rollout batch is per_device_train_batch_size x gradient_accumulation_steps, cut into
            # num_mini_batches minibatches of one optimizer step each (a micro-batch is at most
            # per_device_train_batch_size): 64 x 1 in 4 gives ours, 64 episodes in 4 steps of 16.
            per_device_train_batch_size=s["batch_size"],
            gradient_accumulation_steps=1,
            num_mini_batches=s["batch_size"] // s["minibatch_size"],
            local_rollout_forward_batch_size=s["batch_size"],
            num_ppo_epochs=s["epochs"],
            total_episodes=episodes,
            response_length=s["max_new_tokens"],
            temperature=s["temperature"],
            learning_rate=s["lr"],
            kl_coef=s["kl_coef"],
            kl_estimator=s["kl_estimator"],
            cliprange=s["clip"],
            cliprange_value=s["value_clip"],
            vf_coef=s["vf_coef"],
            gamma=s["gamma"],
            lam=s["lam"],
            stop_token="eos",
            missing_eos_penalty=-s["missing_eos_penalty"],  # TRL subtracts it; ours is added
            num_sample_generations=0,
            report_to="none",
            save_strategy="no",
            logging_steps=1,
            **off,
            dataloader_num_workers=0,
            seed=s["seed"],
            use_cpu=True,
        )
        trainer = PPOTrainer(
            args=config, processing_class=tok, model=policy, ref_model=ref, reward_model=reward,
            value_model=value, train_dataset=Dataset.from_dict({"input_ids": prompts}), callbacks=[scores],
        )  # fmt: skip
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    import transformers
    import trl

    return {
        "side": f"trl {trl.__version__}",
        "transformers": transformers.__version__,
        "episodes_per_second": episodes / seconds,
        "seconds": seconds,
        "reward_gain": gain(scores.scores) if scores.scores else None,
        "restored": restore,
        "batches": {
            "rollout": config.batch_size,
            "minibatch": config.mini_batch_size,
            "count": config.num_total_batches,
        },
        "threads": torch.get_num_threads(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", type=Path)
    parser.add_argument("--episodes", type=int, default=256)
    parser.add_argument("--settings", type=json.loads, required=True)
    parser.add_argument("--restore", choices=sorted(DEFAULTS), help="run with this TRL default, off otherwise")
    args = parser.parse_args()
    print(json.dumps(main(args.case, args.episodes, args.settings, args.restore)))
