"""TRL's RewardTrainer (trl 1.16) on a case folder: every C(K,2) pair as its own chosen/rejected example.
Prints one JSON line, with held-out pairwise accuracy on the same held-out pairs as ours.

Runs in benchmarks/peers/.venvs/trl-1.16 and imports nothing of the project's. The dataset is what a
user of TRL gives it: explicit-prompt preference text (the prompt in the tokenizer's chat template,
the chosen and the rejected completion); TRL appends the EOS token, tokenises, and drops pairs
longer than max_length. Settings are TRL's defaults except those both sides must share (passed by
benchmarks/peers/rm.py: pairs per step = our pairs per step on average, so both take as many
steps) and bf16 and gradient checkpointing, off on both sides; `--restore NAME` runs with one of
those at TRL's default.

    .venvs/trl-1.16/bin/python trl_rm.py CASE --settings '{...}' [--restore bf16]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import torch
from datasets import Dataset
from peer_common import pair_accuracy, read_jsonl, resolved, rewards, versions
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from trl import RewardConfig, RewardTrainer

# TRL defaults both sides run without -> the settings that restore it (trl_sft.py's, which says why use_cpu).
DEFAULTS = {
    "bf16": {"bf16": None, "use_cpu": not torch.cuda.is_available()},
    "gradient_checkpointing": {"gradient_checkpointing": True},
}


def config(out: str, s: dict, restore: str | None) -> RewardConfig:
    off = {"bf16": False, "gradient_checkpointing": False}
    if restore:
        off.update(DEFAULTS[restore])
    accumulation = s.get("accumulation", 1)  # micro-batches a step: the same pairs a step, smaller forwards
    return RewardConfig(
        output_dir=out,
        per_device_train_batch_size=math.ceil(s["pairs_per_step"] / accumulation),
        gradient_accumulation_steps=accumulation,
        num_train_epochs=s["epochs"],
        learning_rate=s["lr"],
        max_length=s["max_length"],
        seed=s["seed"],
        report_to="none",
        dataloader_num_workers=0,
        **off,
    )


def pairs(rows: list[dict]) -> list[dict]:
    """(prompt, chosen, rejected) per untied pair, rank 1 the best; with our ids of both, to check TRL's against."""
    return [
        {
            "prompt": r["prompt"],
            "chosen": r["completions"][w],
            "rejected": r["completions"][lose],
            "ours": [r["sequences"][w], r["sequences"][lose]],
        }
        for r in rows
        for w, lose in r["pairs"]
    ]


def differing(prepared: Dataset, examples: list[dict]) -> dict[str, int]:
    """Pairs TRL dropped (longer than max_length: ours truncates the prompt instead), and kept pairs whose
    ids differ from ours. The `pair` column (the Trainer drops it before the model) says which is which."""
    differ = sum(
        [c, r] != examples[i]["ours"]
        for i, c, r in zip(prepared["pair"], prepared["chosen_ids"], prepared["rejected_ids"], strict=True)
    )
    return {"dropped_pairs": len(examples) - len(prepared), "differing_pairs": differ}


def main(case: Path, s: dict, restore: str | None) -> dict:
    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(case / "rm-init")
    model = AutoModelForSequenceClassification.from_pretrained(case / "rm-init")
    examples = pairs(read_jsonl(case / "rm.jsonl"))
    keys = ("prompt", "chosen", "rejected")
    train = Dataset.from_list([{"pair": i, **{k: e[k] for k in keys}} for i, e in enumerate(examples)])
    with tempfile.TemporaryDirectory() as out:
        trainer = RewardTrainer(model=model, args=config(out, s, restore), train_dataset=train, processing_class=tok)
        trained_pairs = len(trainer.train_dataset) * s["epochs"]
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    held_out = read_jsonl(case / "rm_heldout.jsonl")
    flat = rewards(trainer.model, [s for r in held_out for s in r["sequences"]], tok.pad_token_id)
    scores, i = [], 0
    for r in held_out:
        scores.append(flat[i : i + len(r["sequences"])])
        i += len(r["sequences"])
    return {
        "side": "trl RewardTrainer",
        "pairs_per_second": trained_pairs / seconds,
        "seconds": seconds,
        "pairs": trained_pairs,
        "sequences_forwarded": 2 * trained_pairs,
        "steps": trainer.state.global_step,
        "held_out_accuracy": pair_accuracy(held_out, scores),
        **differing(trainer.train_dataset, examples),
        "restored": restore,
        "resolved": resolved(trainer.args),
        "threads": torch.get_num_threads(),
        "versions": versions(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", type=Path)
    parser.add_argument("--settings", type=json.loads, required=True)
    parser.add_argument("--restore", choices=sorted(DEFAULTS))
    args = parser.parse_args()
    print(json.dumps(main(args.case, args.settings, args.restore)))
