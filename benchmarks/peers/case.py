"""One case all sides read: a tokenizer, randomly initialised models, and each stage's data.

Written by the project (its tokenizer, its model shape, its own example builders) into a folder of
plain Hugging Face files and JSON Lines, so a peer's script needs nothing of the project's: the
models, tokenizer, texts and token ids are the same bytes on both sides.

    policy/            tokenizer + causal LM (SFT trains it; PPO's policy and reference)
    reward/            a sequence scorer (PPO's reward and value init)
    rm-init/           the policy's backbone with a new scalar head, as our rm stage starts (RM trains it)
    prompts.json       PPO prompt ids
    sft.jsonl          demonstrations: messages, the chat-templated prompt text, completion, our ids and labels
    sft_heldout.jsonl  demonstrations no side trains on (held-out loss per completion token)
    rm.jsonl           comparisons: messages, prompt text, K completions, ranks, our ids of each, C(K,2) pairs
    rm_heldout.jsonl   comparisons no side trains on (held-out pairwise accuracy)
    case.json          what the case holds

The world's data are the default files in data/ when present (`instructflow data generate`),
else generated from the params' data.seed into the case (byte-identical to data/).

    python -m benchmarks.peers.case OUT [--prompts 256] [--demonstrations 2000] [--comparisons 64]
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
from components.data.io import read_jsonl, write_jsonl
from components.models.model import (
    context_length,
    load_causal_lm,
    load_tokenizer,
    save_pretrained,
    tiny_lm,
    train_tokenizer,
)
from components.models.reward import reward_model_from
from components.models.text import prompt_ids
from components.params import Params
from components.paths import MODELS, selected_sft
from components.train.rm import comparison_example
from components.train.sft import examples
from components.world.corpus import corpus
from components.world.generate import run_generate
from components.world.kb import build_world


def world_data(data: Path | None, out: Path, params: Params) -> Path:
    """DATA if it holds the world's files, else the world generated from the params into OUT/world."""
    if data is not None and (data / "demonstrations.jsonl").exists():
        return data
    run_generate(params, out / "world")
    return out / "world"


def prompt_text(tok, messages: list[dict]) -> str:
    """The chat-templated prompt as text: what prompt_ids tokenizes, and what a peer is given."""
    return tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def sft_rows(tok, records: list[dict], context: int) -> list[dict]:
    """Demonstrations as both sides take them: text for the peer, our sft_example ids to check its own against."""
    ours = examples(tok, records, context)
    return [
        {"messages": r["messages"], "prompt": prompt_text(tok, r["messages"]), "completion": r["completion"], **e}
        for r, e in zip(records, ours, strict=True)
    ]


def rm_rows(tok, records: list[dict], context: int, wanted: int) -> list[dict]:
    """The first WANTED comparisons with at least one untied pair, with our comparison_example ids and pairs."""
    rows = []
    for r in records:
        if len(rows) == wanted:
            break
        example = comparison_example(tok, r, context)
        if example["pairs"]:
            keep = {k: r[k] for k in ("messages", "completions", "ranks")}
            rows.append({**keep, "prompt": prompt_text(tok, r["messages"]), **example})
    return rows


def split(records: list[dict], n: int, held_out: int) -> tuple[list[dict], list[dict]]:
    """The first N records to train on and the next HELD_OUT (disjoint: the world's prompts are unique)."""
    return records[:n], records[n : n + held_out]


def write_training_data(
    out: Path, tok, data: Path, context: int, demonstrations: int, comparisons: int, held_out: tuple[int, int]
) -> dict:
    """The SFT and RM files of the case; returns their sizes for case.json."""
    sft, sft_held = split(read_jsonl(data / "demonstrations.jsonl"), demonstrations, held_out[0])
    ranked = rm_rows(tok, read_jsonl(data / "comparisons.jsonl"), context, comparisons + held_out[1])
    rm, rm_held = split(ranked, comparisons, held_out[1])
    files = {
        "sft.jsonl": sft_rows(tok, sft, context),
        "sft_heldout.jsonl": sft_rows(tok, sft_held, context),
        "rm.jsonl": rm,
        "rm_heldout.jsonl": rm_held,
    }
    for name, rows in files.items():
        write_jsonl(out / name, rows)
    return {
        "demonstrations": len(sft),
        "sft_tokens": sum(len(r["input_ids"]) for r in files["sft.jsonl"]),
        "held_out_demonstrations": len(sft_held),
        "comparisons": len(rm),
        "pairs": sum(len(r["pairs"]) for r in rm),
        "completions": sum(len(r["sequences"]) for r in rm),
        "held_out_comparisons": len(rm_held),
        "held_out_pairs": sum(len(r["pairs"]) for r in rm_held),
    }


def write_models(out: Path, params: Params, seed: int, trained: Path | None) -> None:
    """policy/ and reward/: random models of the params' shape, or TRAINED's selected SFT and reward model."""
    if trained is not None:
        shutil.copytree(selected_sft(trained), out / "policy")
        shutil.copytree(trained / MODELS / "rm", out / "reward")
        return
    texts = [d["text"] for d in corpus(build_world(0), random.Random(0), 3000)]
    tok = train_tokenizer(texts, params.model.vocab_size)
    torch.manual_seed(seed)
    policy = tiny_lm(tok, params.model)
    save_pretrained(policy, tok, out / "policy")
    rm_config = policy.config.__class__.from_dict(policy.config.to_dict())
    rm_config.num_labels = 1
    torch.manual_seed(seed + 1)
    save_pretrained(AutoModelForSequenceClassification.from_config(rm_config), tok, out / "reward")


def write_rm_init(out: Path, tok, seed: int) -> None:
    """The reward model the RM stage trains: the policy plus a new head, by our rm stage's loader, saved once so
    that both sides start from the same head (each drawing its own would start them apart)."""
    torch.manual_seed(seed + 2)
    save_pretrained(reward_model_from(out / "policy", tok.pad_token_id), tok, out / "rm-init")


def write_case(
    out: Path,
    params: Params,
    prompts: int,
    data: Path | None = Path("data"),
    trained: Path | None = None,
    demonstrations: int = 2000,
    comparisons: int = 64,
    held_out: tuple[int, int] = (200, 64),
    seed: int = 0,
) -> Path:
    """Random models of the params' shape (seeded by SEED); with TRAINED (a project folder after `dvc repro`),
    its selected SFT policy and its reward model, whose answers end and whose rewards can rise.

    HELD_OUT: (demonstrations, comparisons) after the trained-on ones, for the quality figures.
    """
    write_models(out, params, seed, trained)
    tok, policy = load_tokenizer(out / "policy"), load_causal_lm(out / "policy")
    context = context_length(policy.config, params.model.context)
    write_rm_init(out, tok, seed)
    data = world_data(data, out, params)
    limit = context - params.ppo.max_new_tokens
    ids = [prompt_ids(tok, r["messages"])[-limit:] for r in read_jsonl(data / "prompts.jsonl")[:prompts]]
    (out / "prompts.json").write_text(json.dumps(ids))
    sizes = write_training_data(out, tok, data, context, demonstrations, comparisons, held_out)
    about = {"seed": seed, "trained": str(trained) if trained else None, "context": context, "prompts": len(ids)}
    (out / "case.json").write_text(json.dumps({**about, **sizes}, indent=1))
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--demonstrations", type=int, default=2000)
    parser.add_argument("--comparisons", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=Path("data"), help="the world's files (generated when missing)")
    parser.add_argument("--trained", type=Path, help="a project folder: its selected SFT and reward model")
    args = parser.parse_args()
    write_case(
        args.out, benchmark_params(), args.prompts, args.data, args.trained, args.demonstrations, args.comparisons,
        seed=args.seed,
    )  # fmt: skip
