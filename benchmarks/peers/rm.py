"""Reward model side by side: our rm stage's `fit` (K-choose-2 per prompt) against trl 1.16's RewardTrainer.

Same model (the policy's backbone with one new scalar head, saved once in the case), tokenizer and
comparisons (the world's first 64 with a ranked pair: 1,276 pairs of K = 4..9 completions), 1 epoch,
lr, seed, context, one torch thread each. Ours takes rm.batch_size (16) prompts a step with all their
C(K,2) pairs, forwarding each completion once; TRL takes every pair as a chosen/rejected example,
with as many pairs a step as ours on average (1,276 / 4 steps = 319), so both take as many steps.
Runs alternate (ours, TRL, ...), each in a fresh process; the medians of pairs learned per second
are compared, and each side's pairwise accuracy on the next 64 comparisons (held out) shows how
well it learned. Prints one JSON line.

    ./benchmarks/peers/setup.sh                 # once: TRL in virtual environments of its own
    python -m benchmarks.peers.rm               # 64 prompts, 2 rounds
    python -m benchmarks.peers.rm --tiny        # 8 prompts, 1 round: a check that it runs
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

from benchmarks.common import benchmark_params
from benchmarks.peers import drive
from benchmarks.peers.case import write_case

PEER = drive.peer_python("1.16")

# What still differs between the sides, by design of each library (printed with the result).
MISMATCHES = drive.TRAINER_MISMATCHES + [
    "forwards: ours forwards each of a prompt's K completions once and forms its C(K,2) pairs from those rewards "
    "(the paper's way); TRL forwards the chosen and the rejected sequence of every pair (sequences_forwarded)",
    "loss weights: ours the mean over a step's prompts of each prompt's mean pair loss (a prompt weighs the same "
    "whatever its K); TRL the mean over the step's pairs",
    "steps: ours rm.batch_size prompts a step, so its pairs a step vary with K; TRL a fixed number, our mean "
    "(in one forward unless --trl-accumulation)",
    "per-step extras: TRL gathers min, mean and max reward, accuracy and margin of every batch (its defaults)",
]


def settings(batch_size: int | None, epochs: int, seed: int | None = None) -> dict:
    """What both sides share: rm.* of params.yaml (prompts a step: rm.batch_size unless given, the seed
    rm.seed unless given), the goal's epochs."""
    rm = benchmark_params().rm
    seed = rm.seed if seed is None else seed
    return {"seed": seed, "lr": rm.lr, "batch_size": batch_size or rm.batch_size, "epochs": epochs}


def peer_settings(shared: dict, about: dict, accumulation: int) -> dict:
    """TRL's: pairs a step = our pairs over our steps, rounded up, in ACCUMULATION micro-batches (TRL's
    default: 1, one forward of them all); max_length = the model's context."""
    steps = math.ceil(about["comparisons"] / shared["batch_size"])
    per_step = math.ceil(about["pairs"] / steps)
    keep = {k: shared[k] for k in ("seed", "lr", "epochs")}
    return {**keep, "pairs_per_step": per_step, "accumulation": accumulation, "max_length": about["context"]}


def measured_mismatches(peer: list[dict], ours: list[dict], max_length: int) -> list[str]:
    """Differences the runs themselves report: pairs TRL dropped for length, ids that differ from ours."""
    found = []
    if dropped := peer[0]["dropped_pairs"]:
        found.append(
            f"long pairs: TRL dropped {dropped} pairs with a sequence over max_length {max_length} tokens (its "
            f"filter); ours keeps them, cut to the context (components.models.text.join: the prompt's oldest "
            f"tokens go first): ours learned "
            f"{ours[0]['pairs']} pairs, TRL {peer[0]['pairs']} (pairs/s counts each side's own)"
        )
    if differing := peer[0]["differing_pairs"]:
        found.append(f"tokenisation: {differing} pairs got other ids from TRL than from ours")
    return found


def compare(folder: Path, shared: dict, rounds: int, costs: bool, grouped: bool, accumulation: int) -> dict:
    about = json.loads((folder / "case.json").read_text())
    theirs = peer_settings(shared, about, accumulation)
    ours_cmd = [sys.executable, "-m", "benchmarks.peers.ours_rm", str(folder), "--settings", json.dumps(shared)]
    ours_cmd += [] if grouped else ["--ungrouped"]
    trl_cmd = [str(PEER), str(drive.HERE / "trl_rm.py"), str(folder), "--settings", json.dumps(theirs)]
    ours, peer = drive.alternate(ours_cmd, trl_cmd, rounds)
    key = "pairs_per_second"
    rate = {"ours": drive.median(ours, key), "trl": drive.median(peer, key)}
    return {
        "benchmark": "rm_vs_trl",
        "value": round(rate["ours"] / rate["trl"], 2),
        "unit": "x TRL's pairs/s",
        "ours_pairs_per_second": round(rate["ours"], 1),
        "trl_pairs_per_second": round(rate["trl"], 1),
        "ours_runs": drive.figures(ours, key, 1),
        "trl_runs": drive.figures(peer, key, 1),
        "ours_seconds": drive.figures(ours, "seconds"),
        "trl_seconds": drive.figures(peer, "seconds"),
        "ours_held_out_accuracy": drive.figures(ours, "held_out_accuracy", 4),
        "trl_held_out_accuracy": drive.figures(peer, "held_out_accuracy", 4),
        "comparisons": about["comparisons"],
        "pairs": {"ours": ours[0]["pairs"], "trl": peer[0]["pairs"]},
        "sequences_forwarded": {"ours": ours[0]["sequences_forwarded"], "trl": peer[0]["sequences_forwarded"]},
        "steps": {"ours": ours[0]["steps"], "trl": peer[0]["steps"]},
        "held_out_comparisons": about["held_out_comparisons"],
        "held_out_pairs": about["held_out_pairs"],
        "settings": {"ours": shared, "trl": theirs},
        "trl_resolved": peer[0]["resolved"],
        "trl_defaults_changed": drive.defaults_changed(trl_cmd, key, rate["trl"], costs),
        "versions": drive.versions(peer[0]),
        "model": f"{benchmark_params().model.n_layer}x{benchmark_params().model.n_embd}",
        **drive.machine(),
        "grouped": grouped,
        "mismatches": MISMATCHES
        + [drive.batches_mismatch(grouped, "prompts")]
        + measured_mismatches(peer, ours, theirs["max_length"]),
    }


def main(
    rounds: int = 2,
    case: Path | None = None,
    comparisons: int = 64,
    held_out: int = 64,
    batch_size: int | None = None,
    epochs: int = 1,
    costs: bool = False,
    grouped: bool = True,
    accumulation: int = 1,
    data: Path | None = Path("data"),
    seed: int | None = None,
) -> dict:
    """CASE: a folder benchmarks.peers.case wrote; None: a fresh one of COMPARISONS + HELD_OUT comparisons."""
    drive.require(PEER)
    shared = settings(batch_size, epochs, seed)
    with tempfile.TemporaryDirectory() as tmp:
        if case is None:
            case = write_case(Path(tmp) / "case", benchmark_params(), 0, data, None, 0, comparisons, (0, held_out))
        result = compare(case, shared, rounds, costs, grouped, accumulation)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--case", type=Path, help="a folder benchmarks.peers.case wrote (default: a fresh one)")
    parser.add_argument("--comparisons", type=int, default=64)
    parser.add_argument("--held-out", type=int, default=64, help="comparisons after them that measure accuracy")
    parser.add_argument("--seed", type=int, help="both sides' seed (default: rm.seed): run several to see the noise")
    parser.add_argument("--batch-size", type=int, help="prompts a step (default: rm.batch_size)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--default-costs", action="store_true", help="one more TRL run per default it ran without")
    parser.add_argument("--ungrouped", action="store_true", help=drive.UNGROUPED_HELP)
    parser.add_argument("--trl-accumulation", type=int, default=1, help="TRL's pairs a step in N micro-batches")
    parser.add_argument("--tiny", action="store_true", help="8 prompts, 4 a step, 1 round, no default costs")
    args = parser.parse_args()
    options = {"case": args.case, "epochs": args.epochs, "grouped": not args.ungrouped}
    options["accumulation"] = args.trl_accumulation
    if args.tiny:
        main(1, comparisons=8, held_out=8, batch_size=4, costs=False, **options)
    else:
        main(
            args.rounds,
            comparisons=args.comparisons,
            held_out=args.held_out,
            batch_size=args.batch_size,
            seed=args.seed,
            costs=args.default_costs,
            **options,
        )
