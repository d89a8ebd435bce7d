"""The `sft` stage: supervised fine-tuning on labeler demonstrations.

Loss on the completion tokens only, residual dropout, cosine decay to 10% of the peak, a
Hugging Face checkpoint per epoch (select_sft later picks one by reward-model score).
"""

from __future__ import annotations

import os
import random
import shutil
from functools import partial
from pathlib import Path

import torch

from components.data.io import atomic_path, read_jsonl
from components.data.prepare import corpus_texts
from components.eval.gold import gold_scores, load_gold
from components.eval.metrics import mean
from components.hashing import values_digest
from components.models.generation import answer
from components.models.lm import lm_step, pack
from components.models.model import context_length, load_causal_lm, load_tokenizer, save_pretrained, set_dropout
from components.models.text import collate_lm, lm_loss, sft_example, to_device
from components.params import Params
from components.tracking import Tracker, is_main_process
from components.train.core import fit


def epoch_dir(out: Path, epoch: int) -> Path:
    return out / f"epoch-{epoch + 1:02d}"


def examples(tok, records: list[dict], max_len: int) -> list[dict]:
    return [sft_example(tok, r["messages"], r["completion"], max_len) for r in records]


def corpus_examples(tok, texts: list[str], fraction: float, n_demos: int, block: int, seed: int) -> list[dict]:
    """Corpus blocks (loss on every token) to make up `fraction` of the training set.

    The paper's PPO starts from an SFT trained with 10% pretraining data mixed in: without it
    SFT forgets the corpus, and the PPO-ptx term then spends PPO's updates relearning it.
    """
    wanted = round(n_demos * fraction / (1 - fraction))
    blocks = pack(texts, tok, block) if wanted else []
    picked = random.Random(seed).sample(blocks, min(wanted, len(blocks)))
    return [{"input_ids": b["input_ids"], "labels": b["input_ids"]} for b in picked]


@torch.no_grad()
def completion_loss(model: torch.nn.Module, rows: list[dict], pad_id: int, batch_size: int = 32) -> float:
    """Mean loss per completion token on held-out demonstrations."""
    model.eval()
    total = count = 0.0
    for i in range(0, len(rows), batch_size):
        batch = to_device(collate_lm(rows[i : i + batch_size], pad_id), model)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss, n = lm_loss(logits, batch["labels"])
        total, count = total + loss.item() * n, count + n
    return total / max(count, 1)


def sft_step(model: torch.nn.Module, batch: dict, packed: bool) -> tuple[torch.Tensor, dict[str, float]]:
    """The LM loss on completion tokens (corpus blocks: every token), PACKED or padded; real tokens counted.

    Shuffled batches pad a lot and packing removes it; batches grouped by length pad little, and
    there packing's gathers cost more than they save (benchmarks/README.md, "Third round" item 6).
    """
    loss, numbers = lm_step(model, batch, packed=packed)
    return loss, {**numbers, "tokens": int(batch["attention_mask"].sum())}


def gold_score_of(model, tok, records: list[dict], gold, max_new_tokens: int) -> float | None:
    if gold is None:
        return None
    return mean(gold_scores(gold, records, answer(model, tok, [r["messages"] for r in records], max_new_tokens)))


def run_sft(params: Params, data: Path, splits: Path, base: Path, out: Path, run_dir: Path, tracker: Tracker) -> dict:
    p = params.sft
    tok = load_tokenizer(base)
    torch.manual_seed(p.seed)
    model = load_causal_lm(base, dropout=p.dropout)
    context = context_length(model.config, params.model.context)
    train = examples(tok, read_jsonl(splits / "train" / "demonstrations.jsonl"), context)
    if p.ptx_fraction:
        corpus = corpus_texts(splits, "train")  # none: no corpus blocks (prepare said so)
        train += corpus_examples(tok, corpus, p.ptx_fraction, len(train), p.ptx_block, p.seed)
    valid = examples(tok, read_jsonl(splits / "valid" / "demonstrations.jsonl"), context)

    staging = run_dir / "epochs"  # beside the checkpoint: a resumed run keeps the epochs it saved

    def save_epoch(epoch: int, trained: torch.nn.Module) -> dict[str, float]:
        set_dropout(trained, 0.0)
        save_pretrained(trained, tok, epoch_dir(staging, epoch), epoch=epoch + 1)
        metrics = {"valid_loss": completion_loss(trained, valid, tok.pad_token_id)}
        set_dropout(trained, p.dropout)
        return metrics

    key = values_digest(p, train, base)
    collate = partial(collate_lm, pad_id=tok.pad_token_id)
    lengths = [len(e["input_ids"]) for e in train] if p.group_by_length else None
    where = (params.resources, run_dir, tracker, key)
    step = partial(sft_step, packed=not p.group_by_length)
    model, result = fit(model, train, collate, step, p, *where, on_epoch_end=save_epoch, desc="sft", lengths=lengths)
    set_dropout(model, 0.0)
    test = read_jsonl(splits / "test" / "prompts.jsonl")[: p.eval_prompts]
    gold = load_gold(data)
    base_model = load_causal_lm(base, device=next(model.parameters()).device)
    metrics = {
        "valid_loss": completion_loss(model, valid, tok.pad_token_id),
        "gold_score": gold_score_of(model, tok, test, gold, p.max_new_tokens),
        "base_gold_score": gold_score_of(base_model, tok, test, gold, p.max_new_tokens),
        "tokens_per_second": result.tokens_per_second,
        "epochs": p.epochs,
        "seconds": result.seconds,
        "valid_loss_by_epoch": [h["valid_loss"] for h in result.history if "valid_loss" in h],
    }
    publish_epochs(staging, out, p.epochs)
    return metrics


def publish_epochs(staging: Path, out: Path, epochs: int) -> None:
    """This run's epochs replace OUT in one rename, after everything that can fail. Only EPOCHS
    folders: a higher one in STAGING is from an earlier run with more epochs."""
    if not is_main_process():
        return
    with atomic_path(out) as tmp:
        tmp.mkdir()
        for epoch in range(epochs):
            os.replace(epoch_dir(staging, epoch), epoch_dir(tmp, epoch))
    shutil.rmtree(staging, ignore_errors=True)
