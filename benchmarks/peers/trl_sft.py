"""TRL's SFTTrainer (trl 1.16) on a case folder, completion-only loss. Prints one JSON line.

Runs in benchmarks/peers/.venvs/trl-1.16 and imports nothing of the project's. The dataset is what a
user of TRL gives it: prompt-completion text, the prompt already in the tokenizer's chat template;
TRL appends the EOS token, tokenises, and masks the prompt (completion_only_loss's default for such
a dataset). Settings are TRL's defaults except those both sides must share (passed by
benchmarks/peers/sft.py) and bf16 and gradient checkpointing, TRL defaults that are off on both
sides; `--restore NAME` runs with one of those two at TRL's default, to show what it costs.

    .venvs/trl-1.16/bin/python trl_sft.py CASE --settings '{...}' [--restore bf16]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from datasets import Dataset
from peer_common import completion_loss, read_jsonl, resolved, set_dropout, versions
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

# TRL defaults both sides run without: name -> the settings that restore it. TRL's bf16 default stops
# on a machine without a GPU ("Your setup doesn't support bf16/gpu") unless use_cpu is set, as it says.
DEFAULTS = {
    "bf16": {"bf16": None, "use_cpu": not torch.cuda.is_available()},
    "gradient_checkpointing": {"gradient_checkpointing": True},
}


def config(out: str, s: dict, restore: str | None) -> SFTConfig:
    """TRL's defaults, but for what must match ours, and the defaults we turn off (unless restored)."""
    off = {"bf16": False, "gradient_checkpointing": False}
    if restore:
        off.update(DEFAULTS[restore])
    return SFTConfig(
        output_dir=out,
        per_device_train_batch_size=s["batch_size"],
        num_train_epochs=s["epochs"],
        learning_rate=s["lr"],
        max_length=s["max_length"],
        seed=s["seed"],
        report_to="none",
        dataloader_num_workers=0,
        **off,
    )


def dataset(rows: list[dict]) -> Dataset:
    return Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in rows])


def differing(prepared: Dataset, rows: list[dict]) -> int:
    """Rows whose ids or loss mask, as TRL tokenised them, differ from ours (the case's)."""
    if len(prepared) != len(rows):
        return abs(len(prepared) - len(rows))
    return sum(
        p["input_ids"] != r["input_ids"] or p["labels"] != r["labels"] for p, r in zip(prepared, rows, strict=True)
    )


def main(case: Path, s: dict, restore: str | None) -> dict:
    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(case / "policy")
    model = AutoModelForCausalLM.from_pretrained(case / "policy")
    set_dropout(model, s["dropout"])
    rows = read_jsonl(case / "sft.jsonl")
    with tempfile.TemporaryDirectory() as out:
        args = config(out, s, restore)
        trainer = SFTTrainer(model=model, args=args, train_dataset=dataset(rows), processing_class=tok)
        tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"]) * s["epochs"]
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    held_out = read_jsonl(case / "sft_heldout.jsonl")
    return {
        "side": "trl SFTTrainer",
        "tokens_per_second": tokens / seconds,
        "seconds": seconds,
        "tokens": tokens,
        "steps": trainer.state.global_step,
        "valid_loss": completion_loss(trainer.model, held_out, tok.pad_token_id) if held_out else None,
        "differing_rows": differing(trainer.train_dataset, rows),
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
