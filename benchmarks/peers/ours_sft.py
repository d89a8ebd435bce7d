"""Our SFT on a case folder: the sft stage's examples, step and `fit`, no corpus blocks. Prints one JSON line.

python -m benchmarks.peers.ours_sft CASE --settings '{"batch_size": 16, "epochs": 1, ...}'
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

from benchmarks.common import benchmark_params
from components.data.io import read_jsonl
from components.models.model import context_length, load_causal_lm, load_tokenizer
from components.models.text import collate_lm
from components.tracking import Tracker
from components.train.core import fit
from components.train.sft import completion_loss, examples, sft_step


def main(case: Path, settings: dict, grouped: bool = True) -> dict:
    """GROUPED: batches of similar lengths, as the stage cuts them; False: a plain seeded shuffle, as TRL's."""
    params = benchmark_params()
    p = params.sft.model_copy(update=settings)
    tok = load_tokenizer(case / "policy")
    torch.manual_seed(p.seed)
    model = load_causal_lm(case / "policy", dropout=p.dropout)
    context = context_length(model.config, params.model.context)
    train = examples(tok, read_jsonl(case / "sft.jsonl"), context)
    held_out = examples(tok, read_jsonl(case / "sft_heldout.jsonl"), context)
    collate, lengths = partial(collate_lm, pad_id=tok.pad_token_id), [len(e["input_ids"]) for e in train]
    step = partial(sft_step, packed=not grouped)  # the stage's: padded when grouped, packed when shuffled
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        model, result = fit(
            model, train, collate, step, p, params.resources, Path(run_dir), Tracker(False), "peers", desc="sft",
            lengths=lengths if grouped else None,
        )  # fmt: skip
        seconds = time.perf_counter() - start
    tokens = sum(lengths) * p.epochs
    return {
        "side": "instructflow",
        "tokens_per_second": tokens / seconds,
        "seconds": seconds,
        "tokens": tokens,
        "steps": result.steps,
        "valid_loss": completion_loss(model, held_out, tok.pad_token_id) if held_out else None,
        "grouped": grouped,
        "threads": torch.get_num_threads(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", type=Path)
    parser.add_argument("--settings", type=json.loads, default={})
    parser.add_argument("--ungrouped", action="store_true", help="batches in a plain seeded shuffle")
    args = parser.parse_args()
    print(json.dumps(main(args.case, args.settings, not args.ungrouped)))
