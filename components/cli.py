"""`instructflow`: the command line. Every command takes --params, --profile and --set.

A command imports the components that need torch, Great Expectations or Prefect when it runs:
they take seconds to import, and `instructflow --help` or `instructflow label export` should not wait.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from components import daemon
from components.data.schema import KINDS
from components.errors import DataError, ParamsError, StageError
from components.lock import command_line, project_lock
from components.loop.labeling import TASKS, export_pending, import_labels, labels_pending
from components.params import Params, load_params
from components.paths import METRICS, PEOPLE, round_root
from components.registry import CHAMPION, RegistryError, alias_version, client, fetch
from components.registry import rollback as move_back
from components.stages import STAGES, run_stage

app = typer.Typer(help="InstructGPT's recipe as a reproducible pipeline.", no_args_is_help=True, add_completion=False)
data_app = typer.Typer(help="Make or bring data in the native format.", no_args_is_help=True)
app.add_typer(data_app, name="data")
label_app = typer.Typer(help="Human labels for a round of the feedback loop.", no_args_is_help=True)
app.add_typer(label_app, name="label")


@app.callback()
def options(debug: Annotated[bool, typer.Option("--debug", help="show the traceback of every error")] = False) -> None:
    if debug:
        os.environ["INSTRUCTFLOW_DEBUG"] = "1"  # subprocesses (stages under the flow) inherit it


ParamsOpt = Annotated[Path, typer.Option("--params", help="params file: every default lives there")]
ProfileOpt = Annotated[Path | None, typer.Option("--profile", help="partial params merged over --params")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="override, e.g. data.scale=0.1 (repeatable)")]


def params_from(path: Path, profile: Path | None, overrides: list[str] | None) -> Params:
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
    fmt: Annotated[
        str, typer.Argument(metavar="FORMAT", help="alpaca|dolly|hh-rlhf|sharegpt|openai-chat|scored, or text (corpus)")
    ],
    src: Annotated[Path, typer.Argument(help="source file (text: a file or a folder of .txt/.md, or JSON Lines)")],
    kind: Annotated[str, typer.Option(help="demonstrations|comparisons|prompts|corpus")] = "demonstrations",
    out: Annotated[Path | None, typer.Option(help="output file (default data/<kind>.jsonl)")] = None,
    category: Annotated[str | None, typer.Option(help="category for every record")] = None,
    append: Annotated[bool, typer.Option(help="add to OUT instead of replacing it")] = False,
    text_field: Annotated[
        str, typer.Option(help="text: the field of a JSON Lines source that holds the text")
    ] = "text",
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Convert a public format into the native one."""
    if kind not in KINDS:
        fail(f"--kind must be demonstrations, comparisons, prompts or corpus, got {kind!r}")
    if (fmt == "text") != (kind == "corpus"):
        fail(f"--kind must be corpus for text and demonstrations, comparisons or prompts for {fmt}, got {kind!r}: "
             "pretraining text comes in as `instructflow data import text docs/ --kind corpus`")  # fmt: skip
    target = out or Path("data") / KINDS[kind]
    try:
        if kind == "corpus":
            from components.data.corpus import run_import_corpus

            max_chars = params_from(params, None, None).validate_.max_text_chars  # what validation allows
            metrics = run_import_corpus(src, target, max_chars, text_field=text_field, append=append)
        else:
            from components.data.importers import run_import

            metrics = run_import(fmt, src, kind, target, category=category, append=append)
    except ValueError as e:  # DataError, and the importers' own ValueErrors for a bad option
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
    from components.data.validate import validate_and_record

    if not data.exists():
        fail(f"{data}: folder not found")
    p = params_from(params, profile, set_)
    metrics_path = METRICS / "validate.json"
    report, _ = validate_and_record(p.validate_, data.resolve(), docs.resolve(), metrics_path.resolve())
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
    set_threads()
    if name not in STAGES:
        fail(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    from components.train.launch import inside_launch

    p, launched = params_from(params, profile, set_), inside_launch()
    if not launched and p.orchestration.warm_idle_s > 0 and daemon.wanted(p.orchestration.warm_start):
        options = [*(["--profile", str(profile)] if profile else []), *(a for s in set_ or [] for a in ("--set", s))]
        status = daemon.run_stage(["stage", name, "--params", str(params), *options], p.orchestration.warm_idle_s)
        if status is not None:  # it ran in the daemon's child; None: no daemon took it, so it runs here
            exit_like(status)
    # A process of `accelerate launch` runs under its launcher, and a worker's flow run under the flow
    # that dispatched it: neither locks. `dvc repro` and a user do; the flow's subprocesses inherit its lock.
    if launched or os.environ.get("PREFECT__FLOW_RUN_ID"):
        metrics = STAGES[name].run(p, Path.cwd())
    else:
        with project_lock(Path.cwd(), command_line()):
            metrics = STAGES[name].run(p, Path.cwd())

    if not launched:  # under `accelerate launch` the launching process prints them, once
        typer.echo(json.dumps(metrics, indent=2, sort_keys=True))


def exit_like(status: int) -> None:
    """Exit as a child that exited with STATUS did (negative: killed by that signal)."""
    if status < 0:
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    raise typer.Exit(status if status >= 0 else 128 - status)


def prefect_defaults() -> None:
    # Offline by design (DESIGN.md section 7): no analytics, library loggers reach the run logs.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "components,flows")


@app.command()
def run(
    params: ParamsOpt = Path("params.yaml"),
    profile: ProfileOpt = None,
    set_: SetOpt = None,
    regenerate: Annotated[bool, typer.Option(help="rewrite data/ even when it exists")] = False,
    commit_data: Annotated[bool, typer.Option(help="after rounds, add their comparisons to data/ (dvc add)")] = True,
) -> None:
    """The main job: the `rlhf-pipeline` Prefect flow over every stage, on a temporary local
    Prefect server unless PREFECT_API_URL names one."""
    set_threads()
    prefect_defaults()
    p = params_from(params, profile, set_)
    from flows.server import prefect_api

    with project_lock(Path.cwd(), command_line()), prefect_api():
        state = run_pipeline(p, regenerate, commit_data)
        run_id = state.state_details.flow_run_id
        if not state.is_completed():
            fail(f"rlhf-pipeline flow run {run_id} ended {state.name}: {state.message}")
        results = state.result()
    typer.echo(where_to_look(results, str(run_id), p))


def run_pipeline(p: Params, regenerate: bool, commit_data: bool):
    """The rlhf-pipeline flow run in this folder; returns its final state."""
    from flows import warm
    from flows.pipeline import rlhf_pipeline
    from flows.stage import subprocess_env

    if p.orchestration.warm_start and warm.available():
        warm.HELPER.prewarm(subprocess_env())  # it imports while the temporary Prefect server starts
    return rlhf_pipeline(
        params=p, root=str(Path.cwd()), regenerate=regenerate, commit_data=commit_data, return_state=True
    )


def where_to_look(results: dict, flow_run_id: str, p: Params) -> str:
    register = results.get("register", {})
    champion = register.get("champion_version")
    decision = "promoted" if register.get("promoted") else "not promoted"
    api = os.environ.get("PREFECT_API_URL")
    ui = api.removesuffix("/api") if api else "http://127.0.0.1:4200"
    browse = "" if api else "   (start the UI: prefect server start)"
    return "\n".join(
        [
            "",
            f"Prefect flow run:  {ui}/runs/flow-run/{flow_run_id}{browse}",
            f"MLflow parent run: {results.get('mlflow_run_id')}   (start the UI: mlflow ui --backend-store-uri sqlite:///mlflow.db)",
            "Report:            artifacts/evaluation/report.md   metrics: artifacts/metrics/",
            f"Policy:            {register.get('policy_uri')} ({decision}); champion: "
            + (f"models:/{p.promotion.policy_name}/{champion}" if champion else "none yet"),
            "Talk to it:        instructflow chat"
            + ("" if champion else f" --model {register.get('policy_uri')}   (the candidate: no champion yet)"),
        ]
    )


@app.command("round")
def round_(
    number: Annotated[int, typer.Argument(help="the round, 2 or more (round 1 is the main pipeline)")],
    params: ParamsOpt = Path("params.yaml"),
    profile: ProfileOpt = None,
    set_: SetOpt = None,
    prepare_only: Annotated[bool, typer.Option(help="only sample (and rank, when simulated); no training")] = False,
) -> None:
    """One round of the feedback loop in artifacts/rounds/round-NN (what the flow's round subflow runs)."""
    from components.loop.rounds import prepare_round, run_round

    set_threads()
    p = params_from(params, profile, set_)
    with project_lock(Path.cwd(), command_line()):
        if prepare_only:
            pending = prepare_round(p, Path.cwd(), number)
            typer.echo(f"round {number}: {pending} tasks await labels" if pending else f"round {number}: sampled")
            return
        row = run_round(p, Path.cwd(), number, run_stage)  # its own errors (labels pending, ...) are StageErrors
    typer.echo(json.dumps(row, indent=2, sort_keys=True))


def round_folder(number: int) -> Path:
    sub = round_root(Path.cwd(), number)
    if not (sub / TASKS).exists():
        fail(f"{sub / TASKS} not found: run round {number} with pipeline.labels=human first "
             f"(`instructflow round {number} --prepare-only --set pipeline.labels=human`)")  # fmt: skip
    return sub


def label_folder(number: int | None, evaluate: bool) -> Path:
    """A round's tasks, or (--evaluate) the latest evaluation's blinded pairs."""
    if evaluate == (number is not None):
        fail("pass either --round N (a round's answers) or --evaluate (the evaluation's blinded pairs)")
    if number is not None:
        return round_folder(number)
    from components.loop.people import current

    folder = current(Path.cwd() / PEOPLE)
    if folder is None or not (folder / TASKS).exists():
        fail(f"{PEOPLE}: no evaluation pairs: run the pipeline with evaluate.people=true first")
    return folder


RoundOpt = Annotated[int | None, typer.Option("--round", help="the round whose answers are ranked")]
EvaluateOpt = Annotated[bool, typer.Option("--evaluate", help="the evaluation's blinded PPO-vs-reference pairs")]


@label_app.command("serve")
def label_serve(
    round_: RoundOpt = None,
    evaluate: EvaluateOpt = False,
    host: Annotated[str, typer.Option(help="address to bind (not loopback: --token required)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8765,
    token: Annotated[str | None, typer.Option(envvar="INSTRUCTFLOW_LABEL_TOKEN", help="access token")] = None,
) -> None:
    """Serve the ranking page for a round's tasks or the evaluation's pairs: http://HOST:PORT/?labeler=YOUR_ID"""
    from components.loop.label_server import serve

    sub = label_folder(round_, evaluate)
    typer.echo(f"ranking page: http://{host}:{port}/" + (f"?token={token}" if token else ""))
    try:
        serve(sub, host, port, token)
    except ValueError as e:
        fail(str(e))


@label_app.command("export")
def label_export(
    out: Annotated[Path, typer.Option(help="JSONL of pending tasks")],
    round_: RoundOpt = None,
    evaluate: EvaluateOpt = False,
) -> None:
    """Write the tasks nobody has ranked yet, for another labeling tool (which model wrote what stays hidden)."""
    typer.echo(f"wrote {export_pending(label_folder(round_, evaluate), out)} pending tasks to {out}")


@label_app.command("import")
def label_import(
    source: Annotated[Path, typer.Argument(help="JSONL rows {task_id, ranks[, labeler, flags]}")],
    round_: RoundOpt = None,
    evaluate: EvaluateOpt = False,
    labeler: Annotated[str, typer.Option(help="labeler id for rows without one")] = "imported",
) -> None:
    """Add finished tasks from another tool to the labels (all rows checked first)."""
    sub = label_folder(round_, evaluate)
    n = import_labels(sub, source, labeler)
    typer.echo(f"imported {n} labels; {labels_pending(sub)} tasks still pending")


@app.command()
def chat(
    model: Annotated[str | None, typer.Option(help="model URI or local folder (default: the champion)")] = None,
    prompt: Annotated[str | None, typer.Option(help="answer this once and exit")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="tokens per answer")] = 64,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Talk to a policy with its chat template; multi-turn until /exit (or end of input)."""
    import tempfile

    set_threads()
    p = params_from(params, None, None)
    name = p.promotion.policy_name
    if model is None and alias_version(client(Path.cwd()), name, CHAMPION) is None:
        fail(
            f"no champion yet: model {name!r} has no '{CHAMPION}' alias. Run `instructflow run`, "
            "or pass --model models:/NAME/VERSION or a local folder."
        )
    from components.models.generation import answer
    from components.models.model import inference_device, load_causal_lm, load_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = fetch(model or f"models:/{name}@{CHAMPION}", Path.cwd(), Path(tmp))
        except (RegistryError, OSError) as e:
            fail(str(e))
        except Exception as e:  # MLflow raises its own exception types for unknown models
            fail(f"{model}: cannot load: {e}")
        policy, tok = load_causal_lm(local.weights, device=inference_device()).eval(), load_tokenizer(local.tokenizer)
    reply = lambda messages: answer(policy, tok, [messages], max_new_tokens)[0]  # noqa: E731
    if prompt is not None:
        typer.echo(reply([{"role": "user", "content": prompt}]))
        return
    typer.echo(f"{local.uri}: type a message; /reset starts over, /exit (or Ctrl-D) quits.")
    messages: list[dict] = []
    while True:
        try:
            line = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            typer.echo()
            return
        if line in ("/exit", "/quit"):
            return
        if line == "/reset" or not line:
            messages = [] if line == "/reset" else messages
            continue
        messages.append({"role": "user", "content": line})
        text = reply(messages)
        messages.append({"role": "assistant", "content": text})
        typer.echo(f"bot> {text}")


@app.command()
def rollback(params: ParamsOpt = Path("params.yaml")) -> None:
    """Move the policy's `champion` alias back to the version that was champion before."""
    p = params_from(params, None, None)
    current, previous = move_back(Path.cwd(), p.promotion)
    typer.echo(f"{p.promotion.policy_name}: champion v{current} -> v{previous}")


@app.command()
def deploy(
    pool: Annotated[str, typer.Option(help="work pool of the training stages")] = "gpu",
    pipeline_pool: Annotated[str, typer.Option(help="work pool of the parent flow")] = "cpu",
) -> None:
    """Create the work pools (process type) if missing and apply prefect.yaml's deployments."""
    import subprocess

    prefect_defaults()
    env = {
        **os.environ,
        "INSTRUCTFLOW_ROOT": str(Path.cwd()),
        "INSTRUCTFLOW_GPU_POOL": pool,
        "INSTRUCTFLOW_CPU_POOL": pipeline_pool,
    }
    prefect = [sys.executable, "-m", "prefect"]
    for name in dict.fromkeys((pool, pipeline_pool)):
        exists = subprocess.run([*prefect, "work-pool", "inspect", name], env=env, capture_output=True).returncode == 0
        if not exists:
            subprocess.run([*prefect, "work-pool", "create", name, "--type", "process"], env=env, check=True)
    result = subprocess.run([*prefect, "--no-prompt", "deploy", "--all"], env=env)
    if result.returncode:
        fail("prefect deploy failed (see above); is PREFECT_API_URL set to a running server?")
    typer.echo(f"deployed; start a worker on each machine: prefect worker start --pool {pool}")


# The failures a user acts on: our own, and the file system's (a path that is missing, a file where
# a folder should be, no permission), which name the path. Anything else is a bug and keeps its traceback.
EXPECTED = (DataError, ParamsError, StageError, RegistryError, OSError)


def one_line(error: BaseException) -> str:
    if isinstance(error, FileExistsError | NotADirectoryError) and Path(error.filename or "").is_file():
        return f"{error.filename} is a file where a folder is needed (a path under it was asked for)"
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror or error}"
    return str(error)


def main() -> None:
    """The one error boundary: an expected failure is one red line and exit 1 (2 for params);
    `--debug` (or INSTRUCTFLOW_DEBUG=1) shows its traceback too."""
    try:
        app()
    except EXPECTED as e:
        if os.environ.get("INSTRUCTFLOW_DEBUG"):
            raise
        typer.secho(one_line(e), err=True, fg=typer.colors.RED)
        sys.exit(2 if isinstance(e, ParamsError) else 1)


if __name__ == "__main__":
    main()
