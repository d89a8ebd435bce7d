"""Diagnosis, not part of the pipeline: does the RM rank the policy's own answers better with more of them labelled?

The paper's reward-model data are ranked samples of its own models. This script measures how
far that lever goes here: the selected SFT policy answers K = k_min..k_max samples per fresh
prompt, the simulated labeler ranks them (as a round does), and for each size N the reward
model is retrained on the project's comparisons plus the first N new ones. For each N it
reports the RM's held-out accuracy, rm_diagnose's measures on the policy's own samples, and
(with --ppo) the `ppo` stage's gold win rate against SFT. It prints one JSON line.

Fresh prompts come from a larger world, made with
    instructflow data generate --out /tmp/big --set data.scale=0.5 --set data.seed=1
(prompts equal to a test prompt of the project are dropped). The project's own artifacts are
not touched; everything happens in a throw-away folder. Sampling, the RM runs and PPO each use
one process per worker; with CUDA the RM trains on the GPU.

    .venv/bin/python -m research.rm_label_scale --root . --world /tmp/big --sizes 0,2400,6000 --workers 2 --ppo
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from components.data.io import read_jsonl, write_jsonl
from components.data.prepare import split_records
from components.data.schema import SPLITS
from components.eval.gold import load_gold
from components.loop.samples import comparable, comparison_records, gold_for, sample_answers, simulated_ranks
from components.params import Params, load_params
from components.paths import selected_sft
from components.stages import STAGES
from research.rm_diagnose import diagnose

PPO_KEYS = ("win_rate_vs_sft", "kl_to_sft", "gold_score", "sft_gold_score", "reward", "seconds")


def fresh_prompts(root: Path, world: Path, n: int) -> list[dict]:
    """The world's prompts, those equal to one of the project's test prompts left out."""
    test = {json.dumps(r["messages"]) for r in read_jsonl(root / "artifacts" / "data" / "test" / "prompts.jsonl")}
    prompts = [p for p in read_jsonl(world / "prompts.jsonl") if json.dumps(p["messages"]) not in test]
    if len(prompts) < n:
        raise SystemExit(f"{world / 'prompts.jsonl'}: {len(prompts)} usable prompts, {n} asked for")
    return prompts[:n]


def labeler_folder(root: Path, world: Path, work: Path) -> Path:
    """The project's labeler calibration (stats.json) with the world's gold specs."""
    folder = work / "labeler"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(root / "data" / "stats.json", folder / "stats.json")
    shutil.copy(world / "gold.jsonl", folder / "gold.jsonl")
    return folder


def sample_and_rank(job: tuple[Path, Path, Params, list[dict], int]) -> list[dict]:
    """One worker's share: K samples of the selected SFT per prompt, ranked by the simulated labeler."""
    root, labeler, params, prompts, worker = job
    import torch

    torch.set_num_threads(params.resources.threads)
    r = 100 + worker  # seeds the sampler and the labeler apart from the rounds' (2, 3, ...)
    prompts, answers = comparable(prompts, sample_answers([selected_sft(root)], prompts, params, r))
    return comparison_records(prompts, answers, simulated_ranks(labeler, prompts, answers, params, r)[0], r)


def link_project(root: Path, folder: Path, skip: set[str]) -> None:
    """Link every file of root's data/ and artifacts/data/*/ into folder except those named in skip."""
    for sub in [Path("data")] + [Path("artifacts/data") / s for s in ("train", "valid", "test")]:
        (folder / sub).mkdir(parents=True)
        for f in (root / sub).iterdir():
            if f.name not in skip:
                (folder / sub / f.name).symlink_to(f.resolve())
    (folder / "artifacts" / "models").mkdir()
    for name in ("base", "sft"):
        (folder / "artifacts" / "models" / name).symlink_to((root / "artifacts" / "models" / name).resolve())
    (folder / "artifacts" / "metrics").mkdir()
    shutil.copy(root / "artifacts" / "metrics" / "select_sft.json", folder / "artifacts" / "metrics")


def variant(root: Path, world: Path, params: Params, added: list[dict], folder: Path) -> Path:
    """A project whose comparisons are root's plus ADDED, each split by its user as `prepare` does."""
    link_project(root, folder, skip={"comparisons.jsonl", "gold.jsonl"})
    write_jsonl(folder / "data" / "comparisons.jsonl", read_jsonl(root / "data" / "comparisons.jsonl") + added)
    gold = list(load_gold(root / "data").values()) + gold_for(added, load_gold(world))
    write_jsonl(folder / "data" / "gold.jsonl", gold)
    where = split_records({"comparisons.jsonl": added}, params.prepare)["comparisons.jsonl"]  # new users: cut alone
    for split in SPLITS:
        path = root / "artifacts" / "data" / split / "comparisons.jsonl"
        own = read_jsonl(path) if path.exists() else []
        mine = [c for c, s in zip(added, where, strict=True) if s == split]
        write_jsonl(folder / "artifacts" / "data" / split / "comparisons.jsonl", own + mine)
    return folder


def measure(job: tuple[Path, Params, int, bool, int]) -> dict:
    """Train the RM of one variant, diagnose it on the policy's samples, and optionally run PPO with it."""
    folder, params, size, ppo, diagnose_prompts = job
    import torch

    torch.set_num_threads(params.resources.threads)
    rm = STAGES["rm"].run(params, folder)
    row = {"onpolicy_comparisons": size, "rm_accuracy": rm["accuracy"], "rm_gold_accuracy": rm["gold_accuracy"]}
    models = folder / "artifacts" / "models"
    row |= diagnose(folder, selected_sft(folder), models / "rm", params, diagnose_prompts, 4)
    if ppo:
        metrics = STAGES["ppo"].run(params, folder)
        row["ppo"] = {k: metrics.get(k) for k in PPO_KEYS}
    return row


def run(root: Path, world: Path, params: Params, sizes: list[int], workers: int, ppo: bool, prompts: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="rm-label-scale-"))
    try:
        labeler = labeler_folder(root, world, work)
        wanted = fresh_prompts(root, world, max(sizes))
        shares = [(root, labeler, params, wanted[w::workers], w) for w in range(workers)]
        with ProcessPoolExecutor(workers) as pool:
            new = [c for share in pool.map(sample_and_rank, shares) for c in share]
            jobs = [(variant(root, world, params, new[:n], work / f"n{n}"), params, min(n, len(new)), ppo, prompts)
                    for n in sizes]  # fmt: skip
            rows = list(pool.map(measure, jobs))
        return {"prompts": len(wanted), "comparisons": len(new), "sizes": rows}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("."), help="a project that has run up to select_sft")
    ap.add_argument("--world", type=Path, required=True, help="a generated world with prompts.jsonl and gold.jsonl")
    ap.add_argument("--sizes", default="0,2400,6000", help="new comparisons added, comma-separated")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--ppo", action="store_true", help="also run the ppo stage with each RM")
    ap.add_argument("--diagnose-prompts", type=int, default=200)
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="params override, e.g. rm.epochs=2")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ["INSTRUCTFLOW_TRACKING"] = "off"
    params = load_params(args.root / "params.yaml", args.overrides)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(json.dumps(run(args.root, args.world, params, sizes, args.workers, args.ppo, args.diagnose_prompts)))


if __name__ == "__main__":
    main()
