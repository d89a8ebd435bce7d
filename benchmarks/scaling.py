"""How time grows: the whole pipeline (`instructflow run`) at several data scales and model sizes.

Each point runs the flow in a fresh copy of the project's tracked files (the working tree's, so
uncommitted changes count), with its own data (generated at that `data.scale`), MLflow store and
Prefect home, and reports the wall time of the whole run and each training stage's own seconds
(from its metrics file). The points form a cross: every scale at the params' model, every model
at the params' scale. Prints one JSON line; `--plot` also draws time against each axis.

    python -m benchmarks.scaling                                     # scales 0.025 0.05 0.1, models 1x64 2x128 3x192
    python -m benchmarks.scaling --scales 0.05 --models 2x128 --plot benchmarks/scaling.png
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("pretrain", "sft", "rm", "judge_rm", "ppo")  # the stages that report their training seconds


def copy_project(to: Path) -> None:
    """The working tree's tracked files (no data/, artifacts/ or stores: each point makes its own)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        if (ROOT / name).is_file():
            (to / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, to / name)


def run_point(scale: float, model: str, profile: Path | None, prefect_api: str | None = None) -> dict:
    """One `instructflow run` at data.scale SCALE and model LAYERSxWIDTH; its times and headline metrics.

    With PREFECT_API, the run's flows go to that server; else to a temporary one of its own, with a
    fresh Prefect home whose database it migrates first, as a user's first run does."""
    layers, width = (int(x) for x in model.split("x"))
    with tempfile.TemporaryDirectory(prefix="instructflow-scaling-") as tmp:
        project = Path(tmp) / "project"
        copy_project(project)
        sets = [f"data.scale={scale}", f"model.n_layer={layers}", f"model.n_embd={width}"]
        command = [sys.executable, "-m", "components.cli", "run", "--regenerate"]
        command += [*(["--profile", str(profile)] if profile else []), *(a for s in sets for a in ("--set", s))]
        env = {**os.environ, "PREFECT_HOME": str(Path(tmp) / "prefect"), "OMP_NUM_THREADS": "1"}
        env.pop("PREFECT_API_URL", None)  # a temporary server of its own, unless PREFECT_API names one
        if prefect_api:
            env["PREFECT_API_URL"] = prefect_api
        start = time.perf_counter()
        done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"{' '.join(sets)}: instructflow run failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        read = lambda name: json.loads((project / "artifacts" / "metrics" / f"{name}.json").read_text())  # noqa: E731
        metrics, evaluation, records = {s: read(s) for s in STAGES}, read("evaluate"), read("prepare")["records"]
    return {
        "scale": scale,
        "model": model,
        "seconds": round(seconds, 1),
        "stage_seconds": {s: round(m["seconds"], 1) for s, m in metrics.items() if m.get("seconds") is not None},
        "train_demonstrations": records["demonstrations.jsonl"]["train"],
        "train_comparisons": records["comparisons.jsonl"]["train"],
        "ppo_gold_win_rate_vs_sft": evaluation["win_rate_vs_sft"].get("ppo"),
        "promoted": evaluation.get("promoted"),
    }


def plot(rows: list[dict], scales: list[float], models: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    by_scale = [r for r in rows if r["model"] == models[len(models) // 2]]
    at_middle = [r for r in rows if r["scale"] == scales[len(scales) // 2]]
    by_model = sorted(at_middle, key=lambda r: models.index(r["model"]))
    axes_of = ((axes[0], "scale", by_scale, "data.scale"), (axes[1], "model", by_model, "model (layers x width)"))
    for ax, key, points, label in axes_of:
        xs = [str(r[key]) for r in points]
        ax.plot(xs, [r["seconds"] / 60 for r in points], "o-", label="instructflow run")
        for stage in STAGES:
            ax.plot(xs, [r["stage_seconds"].get(stage, 0) / 60 for r in points], ".--", label=stage)
        ax.set_xlabel(label)
        ax.set_ylabel("minutes")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("instructflow run: wall time and each training stage's seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(
    scales: list[float],
    models: list[str],
    profile: Path | None = None,
    plot_to: Path | None = None,
    prefect_api: str | None = None,
) -> dict:
    middle_scale, middle_model = scales[len(scales) // 2], models[len(models) // 2]
    points = [(s, middle_model) for s in scales] + [(middle_scale, m) for m in models if m != middle_model]
    rows = [run_point(s, m, profile, prefect_api) for s, m in points]
    if plot_to:
        plot(rows, scales, models, plot_to)
    result = {
        "benchmark": "pipeline_scaling",
        "value": rows[scales.index(middle_scale)]["seconds"],
        "unit": "s for the middle point",
        "rows": rows,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[0.025, 0.05, 0.1])
    parser.add_argument("--models", nargs="+", default=["1x64", "2x128", "3x192"])
    parser.add_argument("--profile", type=Path, help="partial params merged over params.yaml (tests: tests/tiny.yaml)")
    parser.add_argument("--plot", type=Path, help="a PNG of time against scale and model size")
    parser.add_argument("--prefect-api", help="a running server's API URL (default: a temporary server per point)")
    args = parser.parse_args()
    main(args.scales, args.models, args.profile, args.plot, args.prefect_api)
