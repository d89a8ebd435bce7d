"""`instructflow`: the command line. Every command takes --params, --profile and --set."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from components.io import DataError
from components.params import Params, ParamsError, load_params

app = typer.Typer(help="InstructGPT's recipe as a reproducible pipeline.", no_args_is_help=True, add_completion=False)
data_app = typer.Typer(help="Make or bring data in the native format.", no_args_is_help=True)
app.add_typer(data_app, name="data")

ParamsOpt = Annotated[Path, typer.Option("--params", help="params file (missing: built-in defaults)")]
ProfileOpt = Annotated[Path | None, typer.Option("--profile", help="partial params merged over --params")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="override, e.g. data.scale=0.1 (repeatable)")]


def params_from(path: Path, profile: Path | None, overrides: list[str] | None) -> Params:
    if not path.exists() and path == Path("params.yaml"):
        return load_params(None, overrides or (), profile)
    return load_params(path, overrides or (), profile)


def fail(message: str) -> None:
    typer.secho(message, err=True, fg=typer.colors.RED)
    raise typer.Exit(1)


def set_threads() -> None:
    # Small models on few cores: one thread beats two (DESIGN.md section 7); users can raise it.
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@data_app.command("generate")
def data_generate(
    out: Annotated[Path, typer.Option(help="output folder")] = Path("data"),
    params: ParamsOpt = Path("params.yaml"),
    profile: ProfileOpt = None,
    set_: SetOpt = None,
) -> None:
    """Write the embedded default world: demonstrations, comparisons, prompts, corpus, gold, stats."""
    from components.world.generate import run_generate

    stats = run_generate(params_from(params, profile, set_), out)
    records = ", ".join(f"{n} {name}" for name, n in stats["records"].items())
    typer.echo(f"wrote {out}/: {records}, {stats['corpus_docs']} corpus docs in {stats['seconds']} s")
    typer.echo(f"labeler agreement {stats['labeler_agreement']:.3f} (noise sigma {stats['labeler_noise']:.3f})")


@data_app.command("import")
def data_import(
    fmt: Annotated[str, typer.Argument(metavar="FORMAT", help="alpaca|dolly|hh-rlhf|sharegpt|openai-chat|scored")],
    src: Annotated[Path, typer.Argument(help="source file")],
    kind: Annotated[str, typer.Option(help="demonstrations|comparisons|prompts")] = "demonstrations",
    out: Annotated[Path | None, typer.Option(help="output file (default data/<kind>.jsonl)")] = None,
    category: Annotated[str | None, typer.Option(help="category for every record")] = None,
    append: Annotated[bool, typer.Option(help="add to OUT instead of replacing it")] = False,
) -> None:
    """Convert a public format into the native one."""
    from components.importers import run_import
    from components.schema import KINDS

    if kind not in KINDS or kind == "corpus":
        fail(f"--kind must be demonstrations, comparisons or prompts, got {kind!r}")
    target = out or Path("data") / KINDS[kind]
    try:
        metrics = run_import(fmt, src, kind, target, category=category, append=append)
    except (DataError, ValueError, FileNotFoundError) as e:
        fail(str(e))
    typer.echo(json.dumps(metrics, indent=2))
    typer.echo(f"wrote {target}")


@app.command()
def validate(
    data: Annotated[Path, typer.Option(help="a data folder, flat or with train/valid/test")] = Path("data"),
    docs: Annotated[Path, typer.Option(help="Data Docs folder")] = Path("artifacts/validation"),
    params: ParamsOpt = Path("params.yaml"),
    profile: ProfileOpt = None,
    set_: SetOpt = None,
) -> None:
    """Check data files with Great Expectations; exit 1 with a report naming every failing record."""
    from components.stages import METRICS, validate_and_record

    if not data.exists():
        fail(f"{data}: folder not found")
    p = params_from(params, profile, set_)
    metrics_path = METRICS / "validate.json"
    report = validate_and_record(p, data.resolve(), docs.resolve(), metrics_path.resolve())
    typer.echo(report.format())
    typer.echo(f"Data Docs: {docs}/")
    if not report.success:
        raise typer.Exit(1)


@app.command()
def stage(
    name: Annotated[str, typer.Argument(help="stage name (see dvc.yaml)")],
    params: ParamsOpt = Path("params.yaml"),
    profile: ProfileOpt = None,
    set_: SetOpt = None,
) -> None:
    """Run one pipeline stage in this folder: what `dvc repro` and the flows call."""
    from components.stages import STAGES, StageError

    set_threads()
    if name not in STAGES:
        fail(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    try:
        metrics = STAGES[name].run(params_from(params, profile, set_), Path.cwd())
    except (StageError, DataError, FileNotFoundError) as e:
        fail(str(e))
    typer.echo(json.dumps(metrics, indent=2, sort_keys=True))


@app.command()
def run(
    params: ParamsOpt = Path("params.yaml"),
    profile: ProfileOpt = None,
    set_: SetOpt = None,
    regenerate: Annotated[bool, typer.Option(help="rewrite data/ even when it exists")] = False,
) -> None:
    """The main job: make the default data when data/ is empty, then run every stage in order."""
    from components.stages import DATA, STAGES, StageError
    from components.world.generate import run_generate

    set_threads()
    p = params_from(params, profile, set_)
    if regenerate or not any(DATA.glob("*.jsonl")):
        stats = run_generate(p, DATA)
        typer.echo(f"generated {DATA}/ in {stats['seconds']} s (labeler agreement {stats['labeler_agreement']:.3f})")
    for name, s in STAGES.items():
        typer.echo(f"[{name}] running")
        try:
            s.run(p, Path.cwd())
        except (StageError, DataError) as e:
            fail(f"[{name}] failed: {e}")
        typer.echo(f"[{name}] done: {s.metrics}")
    typer.echo(
        "splits: artifacts/data/{train,valid,test}/   Data Docs: artifacts/validation/   metrics: artifacts/metrics/"
    )


def main() -> None:
    try:
        app()
    except ParamsError as e:
        typer.secho(str(e), err=True, fg=typer.colors.RED)
        sys.exit(2)


if __name__ == "__main__":
    main()
