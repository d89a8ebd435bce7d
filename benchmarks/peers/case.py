"""One case both sides read: a tokenizer, randomly initialised policy and reward models, and prompts.

Written by the project (its tokenizer, its model shape) into a folder of plain Hugging Face files,
so the peer's script needs nothing of the project's: the models, tokenizer and prompt ids are the
same bytes on both sides.

    python -m benchmarks.peers.case OUT [--prompts 256]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification

from benchmarks.common import benchmark_params
from components.data.io import read_jsonl
from components.models.model import (
    context_length,
    load_causal_lm,
    load_tokenizer,
    save_pretrained,
    tiny_lm,
    train_tokenizer,
)
from components.models.text import prompt_ids
from components.params import Params
from components.paths import MODELS, selected_sft
from components.world.corpus import corpus
from components.world.kb import build_world


def write_case(out: Path, params: Params, prompts: int, data: Path = Path("data"), trained: Path | None = None) -> Path:
    """Random models of the params' shape; with TRAINED (a project folder after `dvc repro`), its
    selected SFT policy and its reward model, whose answers end and whose rewards can rise."""
    if trained is not None:
        shutil.copytree(selected_sft(trained), out / "policy")
        shutil.copytree(trained / MODELS / "rm", out / "reward")
        tok, policy = load_tokenizer(out / "policy"), load_causal_lm(out / "policy")
    else:
        texts = [d["text"] for d in corpus(build_world(0), random.Random(0), 3000)]
        tok = train_tokenizer(texts, params.model.vocab_size)
        torch.manual_seed(0)
        policy = tiny_lm(tok, params.model)
        save_pretrained(policy, tok, out / "policy")
        rm_config = policy.config.__class__.from_dict(policy.config.to_dict())
        rm_config.num_labels = 1
        torch.manual_seed(1)
        save_pretrained(AutoModelForSequenceClassification.from_config(rm_config), tok, out / "reward")
    limit = context_length(policy.config, params.model.context) - params.ppo.max_new_tokens
    records = read_jsonl(data / "prompts.jsonl")[:prompts]
    ids = [prompt_ids(tok, r["messages"])[-limit:] for r in records]
    (out / "prompts.json").write_text(json.dumps(ids))
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--trained", type=Path, help="a project folder: its selected SFT and reward model")
    args = parser.parse_args()
    write_case(args.out, benchmark_params(), args.prompts, trained=args.trained)
