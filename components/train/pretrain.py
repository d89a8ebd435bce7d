"""The `pretrain` stage: a byte-level BPE tokenizer and a small causal LM (GPT-NeoX or GPT-2) trained on the corpus.

With `model.base` set, the stage instead copies that local Hugging Face model (no remote
code, safetensors) into artifacts/models/base, so every later stage loads one place.
"""

from __future__ import annotations

from pathlib import Path

import torch

from components.data.io import read_jsonl
from components.data.prepare import corpus_texts
from components.errors import StageError
from components.eval.metrics import perplexity
from components.hashing import values_digest
from components.models.lm import collate_blocks, lm_step, pack
from components.models.model import load_causal_lm, load_tokenizer, save_pretrained, tiny_lm, train_tokenizer
from components.params import Params
from components.tracking import Tracker
from components.train.core import fit


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


def run_pretrain(params: Params, splits: Path, out: Path, run_dir: Path, tracker: Tracker) -> dict:
    if params.model.base:
        tok, model = load_tokenizer(params.model.base), load_causal_lm(params.model.base)
        save_pretrained(model, tok, out)
        return {"skipped": True, "base": params.model.base, "parameters": model.num_parameters()}
    train_texts, valid_texts = corpus_texts(splits, "train"), corpus_texts(splits, "valid")
    if not train_texts:
        raise StageError(
            f"{splits / 'train' / 'corpus.jsonl'}: no pretraining text for the tiny base model; set model.base to a "
            "local Hugging Face folder, or bring a corpus in (`instructflow data import text DOCS --kind corpus`)"
        )
    tok = train_tokenizer(tokenizer_texts(splits, train_texts), params.model.vocab_size)
    torch.manual_seed(params.pretrain.seed)
    model = tiny_lm(tok, params.model)
    blocks = pack(train_texts, tok, params.model.context)
    held_out = pack(valid_texts, tok, params.model.context)
    key = values_digest(params.model, params.pretrain, blocks)
    where = (params.resources, run_dir, tracker, key)
    model, result = fit(model, blocks, collate_blocks, lm_step, params.pretrain, *where, desc="pretrain")
    save_pretrained(model, tok, out)
    return {
        "loss": result.last_loss,
        "valid_perplexity": perplexity(model, held_out) if held_out else None,
        "tokens_per_second": result.tokens_per_second,
        "parameters": model.num_parameters(),
        "train_tokens": len(blocks) * params.model.context,
        "seconds": result.seconds,
    }
