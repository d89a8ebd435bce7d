"""Our reward model on a case folder: the rm stage's comparison examples, rm_step and `fit`, all C(K,2)
pairs of a prompt in one batch element. Prints one JSON line, with held-out pairwise accuracy.

    python -m benchmarks.peers.ours_rm CASE --settings '{"batch_size": 16, "epochs": 1, ...}'
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
from components.eval.metrics import evaluate_rm
from components.models.model import context_length, load_tokenizer
from components.models.reward import RewardModel, reward_model_from
from components.tracking import Tracker
from components.train.core import fit
from components.train.rm import collate_comparisons, comparison_example, rm_step


def main(case: Path, settings: dict, grouped: bool = True) -> dict:
    """GROUPED: batches of similar lengths, as the stage cuts them; False: a plain seeded shuffle, as TRL's."""
    params = benchmark_params()
    p = params.rm.model_copy(update=settings)
    tok = load_tokenizer(case / "rm-init")
    torch.manual_seed(p.seed)
    model = reward_model_from(case / "rm-init", tok.pad_token_id)
    context = context_length(model.config, params.model.context)
    train = [comparison_example(tok, r, context) for r in read_jsonl(case / "rm.jsonl")]
    train = [e for e in train if e["pairs"]]
    collate = partial(collate_comparisons, pad_id=tok.pad_token_id)
    lengths = [max(map(len, e["sequences"])) for e in train]  # a prompt's longest completion, as run_rm
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        model, result = fit(
            model, train, collate, rm_step, p, params.resources, Path(run_dir), Tracker(False), "peers", desc="rm",
            lengths=lengths if grouped else None,
        )  # fmt: skip
        seconds = time.perf_counter() - start
    pairs = sum(len(e["pairs"]) for e in train) * p.epochs
    held_out = read_jsonl(case / "rm_heldout.jsonl")
    accuracy = evaluate_rm(RewardModel(model).eval(), tok, held_out, None, context)["accuracy"] if held_out else None
    return {
        "side": "instructflow",
        "pairs_per_second": pairs / seconds,
        "seconds": seconds,
        "pairs": pairs,
        "sequences_forwarded": sum(len(e["sequences"]) for e in train) * p.epochs,
        "steps": result.steps,
        "held_out_accuracy": accuracy,
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
