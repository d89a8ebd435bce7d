"""SFT side by side: our sft stage's `fit` against trl 1.16's SFTTrainer (completion-only loss) on the same case.

Same model (the params' shape, randomly initialised, residual dropout sft.dropout on both sides),
tokenizer, demonstrations (the world's first 2,000), batch 16, 1 epoch, lr, seed, context, one torch
thread each. Runs alternate (ours, TRL, ours, TRL, ...), each in a fresh process; the medians of real
(non-pad) tokens per second of training are compared, and each side's loss per completion token on
200 held-out demonstrations shows that both trained. Prints one JSON line.

    ./benchmarks/peers/setup.sh                 # once: TRL in virtual environments of its own
    python -m benchmarks.peers.sft              # 2,000 demonstrations, 2 rounds
    python -m benchmarks.peers.sft --tiny       # 64 demonstrations, 1 round: a check that it runs
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from benchmarks.common import benchmark_params
from benchmarks.peers import drive
from benchmarks.peers.case import write_case

PEER = drive.peer_python("1.16")

# What still differs between the sides, by design of each library (printed with the result).
MISMATCHES = drive.TRAINER_MISMATCHES + [
    "per-step extras: TRL computes entropy and token accuracy of every batch (its defaults) and its fused LM head "
    "computes log-probs in chunks; ours the plain cross-entropy",
]


def settings(batch_size: int, epochs: int) -> dict:
    """What both sides share: the goal's batch and epochs, the rest sft.* of params.yaml."""
    sft = benchmark_params().sft
    return {"seed": sft.seed, "lr": sft.lr, "dropout": sft.dropout, "batch_size": batch_size, "epochs": epochs}


def measured_mismatches(peer: list[dict], ours: list[dict]) -> list[str]:
    """Differences the runs themselves report: TRL's tokenisation against ours, tokens trained on."""
    found = []
    if differing := peer[0]["differing_rows"]:
        found.append(f"tokenisation: {differing} demonstrations got other ids or loss masks from TRL than from ours")
    if peer[0]["tokens"] != ours[0]["tokens"]:
        found.append(f"tokens trained on: ours {ours[0]['tokens']}, TRL {peer[0]['tokens']}")
    return found


def compare(folder: Path, shared: dict, rounds: int, costs: bool, grouped: bool) -> dict:
    about = json.loads((folder / "case.json").read_text())
    ours_cmd = [sys.executable, "-m", "benchmarks.peers.ours_sft", str(folder), "--settings", json.dumps(shared)]
    ours_cmd += [] if grouped else ["--ungrouped"]
    peer_shared = {**shared, "max_length": about["context"]}
    trl_cmd = [str(PEER), str(drive.HERE / "trl_sft.py"), str(folder), "--settings", json.dumps(peer_shared)]
    ours, peer = drive.alternate(ours_cmd, trl_cmd, rounds)
    key = "tokens_per_second"
    rate = {"ours": drive.median(ours, key), "trl": drive.median(peer, key)}
    return {
        "benchmark": "sft_vs_trl",
        "value": round(rate["ours"] / rate["trl"], 2),
        "unit": "x TRL's tokens/s",
        "ours_tokens_per_second": round(rate["ours"], 1),
        "trl_tokens_per_second": round(rate["trl"], 1),
        "ours_runs": drive.figures(ours, key, 1),
        "trl_runs": drive.figures(peer, key, 1),
        "ours_seconds": drive.figures(ours, "seconds"),
        "trl_seconds": drive.figures(peer, "seconds"),
        "ours_valid_loss": drive.figures(ours, "valid_loss", 4),
        "trl_valid_loss": drive.figures(peer, "valid_loss", 4),
        "demonstrations": about["demonstrations"],
        "held_out_demonstrations": about["held_out_demonstrations"],
        "tokens": ours[0]["tokens"],
        "steps": {"ours": ours[0]["steps"], "trl": peer[0]["steps"]},
        "settings": peer_shared,
        "trl_resolved": peer[0]["resolved"],
        "trl_defaults_changed": drive.defaults_changed(trl_cmd, key, rate["trl"], costs),
        "versions": drive.versions(peer[0]),
        "model": f"{benchmark_params().model.n_layer}x{benchmark_params().model.n_embd}",
        **drive.machine(),
        "grouped": grouped,
        "mismatches": MISMATCHES
        + [drive.batches_mismatch(grouped, "demonstrations")]
        + measured_mismatches(peer, ours),
    }


def main(
    rounds: int = 2,
    case: Path | None = None,
    demonstrations: int = 2000,
    held_out: int = 200,
    batch_size: int = 16,
    epochs: int = 1,
    costs: bool = False,
    grouped: bool = True,
    data: Path | None = Path("data"),
) -> dict:
    """CASE: a folder benchmarks.peers.case wrote; None: a fresh one of DEMONSTRATIONS + HELD_OUT demonstrations."""
    drive.require(PEER)
    shared = settings(batch_size, epochs)
    with tempfile.TemporaryDirectory() as tmp:
        if case is None:
            case = write_case(Path(tmp) / "case", benchmark_params(), 0, data, None, demonstrations, 0, (held_out, 0))
        result = compare(case, shared, rounds, costs, grouped)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--case", type=Path, help="a folder benchmarks.peers.case wrote (default: a fresh one)")
    parser.add_argument("--demonstrations", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--default-costs", action="store_true", help="one more TRL run per default it ran without")
    parser.add_argument("--ungrouped", action="store_true", help=drive.UNGROUPED_HELP)
    parser.add_argument("--tiny", action="store_true", help="64 demonstrations, 1 round, no default costs")
    args = parser.parse_args()
    options = {"case": args.case, "batch_size": args.batch_size, "epochs": args.epochs, "grouped": not args.ungrouped}
    if args.tiny:
        main(1, demonstrations=64, held_out=16, costs=False, **options)
    else:
        main(args.rounds, demonstrations=args.demonstrations, costs=args.default_costs, **options)
