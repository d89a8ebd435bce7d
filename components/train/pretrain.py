"""The `pretrain` stage: a byte-level BPE tokenizer and a small causal LM (GPT-NeoX or GPT-2) trained on the corpus.

With `model.base` set, the stage instead copies that local Hugging Face model (no remote
code, safetensors) into artifacts/models/base, so every later stage loads one place.
"""

from __future__ import annotations

from pathlib import Path

import torch

from components.data.io import read_jsonl
from components.models.model import DOC, load_causal_lm, load_tokenizer, save_pretrained, tiny_lm, train_tokenizer
from components.models.text import lm_loss, to_device
from components.params import Params
from components.tracking import Tracker
from components.train.core import fingerprint, fit


def tokenizer_texts(splits: Path, corpus: list[str]) -> list[str]:
    """The corpus plus the training split's prompts and answers: the vocabulary users write in.

    Only the tokenizer sees the instructions; the base model is pretrained on the corpus alone,
    so it still continues text instead of following instructions.
    """
    texts = list(corpus)
    for name in ("demonstrations.jsonl", "prompts.jsonl"):
        path = splits / "train" / name
        if path.exists():
            for r in read_jsonl(path):
                texts += [m["content"] for m in r["messages"]] + ([r["completion"]] if "completion" in r else [])
    return texts


def pack(texts: list[str], tok, block: int) -> list[dict]:
    """Documents joined by the document separator and cut into blocks of `block` tokens (GPT style)."""
    stream: list[int] = []
    for text in texts:
        stream += tok(text + DOC, add_special_tokens=False)["input_ids"]
    return [{"input_ids": stream[i : i + block]} for i in range(0, len(stream) - block + 1, block)]


def collate_blocks(batch: list[dict]) -> dict[str, torch.Tensor]:
    ids = torch.tensor([b["input_ids"] for b in batch], dtype=torch.long)
    return {"input_ids": ids, "labels": ids}


def lm_step(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    logits = model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask")).logits
    loss, n = lm_loss(logits, batch["labels"])
    return loss, {"tokens": batch["input_ids"].numel(), "examples": len(batch["input_ids"]), "target_tokens": n}


@torch.no_grad()
def perplexity(model: torch.nn.Module, blocks: list[dict], batch_size: int = 32) -> float:
    """exp(mean token loss) over held-out blocks: the alignment tax is measured with this."""
    model.eval()
    total = count = 0.0
    for i in range(0, len(blocks), batch_size):
        batch = to_device(collate_blocks(blocks[i : i + batch_size]), model)
        loss, n = lm_loss(model(input_ids=batch["input_ids"]).logits, batch["labels"])
        total, count = total + loss.item() * n, count + n
    return float(torch.exp(torch.tensor(total / max(count, 1))))


def run_pretrain(params: Params, splits: Path, out: Path, run_dir: Path, tracker: Tracker) -> dict:
    if params.model.base:
        tok, model = load_tokenizer(params.model.base), load_causal_lm(params.model.base)
        save_pretrained(model, tok, out)
        return {"skipped": True, "base": params.model.base, "parameters": model.num_parameters()}
    train_texts = [r["text"] for r in read_jsonl(splits / "train" / "corpus.jsonl")]
    valid_texts = [r["text"] for r in read_jsonl(splits / "valid" / "corpus.jsonl")]
    tok = train_tokenizer(tokenizer_texts(splits, train_texts), params.model.vocab_size)
    torch.manual_seed(params.pretrain.seed)
    model = tiny_lm(tok, params.model)
    blocks = pack(train_texts, tok, params.model.context)
    held_out = pack(valid_texts, tok, params.model.context)
    key = fingerprint(params.model, params.pretrain, blocks)
    model, result = fit(
        model,
        blocks,
        collate_blocks,
        lm_step,
        params.pretrain,
        params.resources,
        run_dir,
        tracker,
        key,
        desc="pretrain",
    )
    save_pretrained(model, tok, out)
    return {
        "loss": result.last_loss,
        "valid_perplexity": perplexity(model, held_out),
        "tokens_per_second": result.tokens_per_second,
        "parameters": model.num_parameters(),
        "train_tokens": len(blocks) * params.model.context,
        "seconds": result.seconds,
    }
