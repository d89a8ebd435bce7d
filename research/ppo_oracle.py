"""Diagnosis, not part of the pipeline: PPO with the toy world's gold grader as its reward.

The recipe never lets training see the gold score (Gao et al.'s gold/proxy set-up). This
script breaks that rule on purpose, in a throw-away copy of the project, to separate the
two reasons PPO can fail to beat SFT: a reward model that misranks the policy's answers,
or a PPO budget (episodes, learning rate, KL) too small to move the policy even with a
perfect reward. It runs PPO (`run_ppo`, as the `ppo` stage does) with the gold grader as the reward it optimises
(score = scale * (gold - 0.5), so the spread is like the RM's), then the `evaluate` stage,
and prints one JSON line.

    .venv/bin/python -m research.ppo_oracle [--root .] [--set ppo.episodes=4096 ...]

The root needs the stages up to select_sft done (e.g. after `instructflow run`); its own
artifacts are not touched. Tracking is off.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from components.data.io import read_jsonl
from components.eval.gold import load_gold
from components.models.model import load_tokenizer
from components.models.text import prompt_ids
from components.params import load_params
from components.world.grader import grade


class GoldReward(torch.nn.Module):
    """Stands where the reward model stands: (ids, mask) -> one score per row, from the gold grader."""

    def __init__(self, tok, specs: dict[tuple[int, ...], dict], scale: float):
        super().__init__()
        self.tok, self.specs, self.scale = tok, specs, scale

    def split(self, row: list[int]) -> tuple[dict, list[int]]:
        # the longest known prompt that starts the row: what follows it is the response
        for end in range(len(row), 0, -1):
            spec = self.specs.get(tuple(row[:end]))
            if spec is not None:
                return spec, row[end:]
        raise KeyError("a rollout row starts with no known training prompt")

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = []
        for row, m in zip(ids.tolist(), mask.tolist(), strict=True):
            spec, response = self.split([t for t, keep in zip(row, m, strict=True) if keep])
            text = self.tok.decode(response, skip_special_tokens=True).strip()
            scores.append(self.scale * (grade(spec, text).score - 0.5))
        return torch.tensor(scores, dtype=torch.float32, device=ids.device)


def copy_project(root: Path, into: Path) -> None:
    shutil.copytree(root / "data", into / "data")
    skip = shutil.ignore_patterns("ppo", "ppo_init", "evaluation", "rounds", "plots", "checkpoints")
    shutil.copytree(root / "artifacts", into / "artifacts", ignore=skip)


def evaluate_summary(evaluated: dict) -> dict:
    return {
        "win_rate_vs_sft": evaluated["win_rate_vs_sft"]["ppo"],
        "gold_score": {m: round(v, 4) for m, v in evaluated["gold_score"].items()},
        "kl_to_sft": round(evaluated["kl_to_sft"]["ppo"], 3),
        "outcomes_vs_sft": evaluated["outcomes_vs_sft"]["ppo"],
    }


def ppo_summary(trained: dict) -> dict:
    """The ppo stage's own judgement (ppo.eval_prompts test prompts), without the evaluate stage."""
    gold = {"sft": round(trained["sft_gold_score"], 4), "ppo": round(trained["gold_score"], 4)}
    return {
        "win_rate_vs_sft": trained["win_rate_vs_sft"],
        "gold_score": gold,
        "kl_to_sft": round(trained["kl_to_sft"], 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("."))
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--scale", type=float, default=3.0, help="reward = scale * (gold - 0.5)")
    ap.add_argument("--ppo-only", action="store_true", help="skip `evaluate`: report ppo.json's win rate (200 prompts)")
    args = ap.parse_args()
    os.environ["INSTRUCTFLOW_TRACKING"] = "off"
    params = load_params(args.root / "params.yaml", args.overrides)
    from components.paths import CHECKPOINTS, DATA, MODELS, PLOTS, SPLITS_DIR, selected_sft
    from components.stages import STAGES
    from components.tracking import Tracker
    from components.train.ppo import run_ppo

    with tempfile.TemporaryDirectory(prefix="ppo-oracle-") as tmp:
        root = Path(tmp)
        copy_project(args.root, root)
        tok = load_tokenizer(selected_sft(root))
        gold = load_gold(root / "data")
        if gold is None:
            raise SystemExit(f"{args.root / 'data'}: no gold.jsonl: the oracle needs the embedded default world")
        limit = params.model.context - params.ppo.max_new_tokens  # the rollout keeps the prompt's last tokens
        specs = {
            tuple(prompt_ids(tok, r["messages"])[-limit:]): gold[r["id"]]
            for r in read_jsonl(root / "artifacts" / "data" / "train" / "prompts.jsonl")
        }
        trained = run_ppo(
            params, root / DATA, root / SPLITS_DIR, selected_sft(root), root / MODELS / "rm", root / MODELS / "ppo",
            root / CHECKPOINTS / "ppo", root / PLOTS, Tracker(active=False), reward=GoldReward(tok, specs, args.scale),
        )  # fmt: skip
        evaluated = None if args.ppo_only else STAGES["evaluate"].run(params, root)
        history = json.loads((root / "artifacts" / "plots" / "ppo_history.json").read_text())
    first, last = history[: len(history) // 4 or 1], history[-(len(history) // 4 or 1) :]
    mean_gold = lambda rows: sum(r["gold_score"] for r in rows) / len(rows)  # noqa: E731
    print(
        json.dumps(
            {
                "reward": "gold",
                "overrides": args.overrides,
                "episodes": trained["episodes"],
                "train_gold_first_quarter": round(mean_gold(first), 4),
                "train_gold_last_quarter": round(mean_gold(last), 4),
                **(ppo_summary(trained) if evaluated is None else evaluate_summary(evaluated)),
            }
        )
    )


if __name__ == "__main__":
    main()
