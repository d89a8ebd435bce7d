"""`rlhf-pipeline`: the InstructGPT recipe as one Prefect flow.

data -> validate -> prepare -> pretrain -> sft -> rm -> select_sft -> ppo -> evaluate ->
register, each a subflow (flows/stage.py). With `orchestration.mode: deployments` the
stages in `orchestration.deployment_stages` run through their deployments on the work pool
(`instructflow deploy`), so a GPU worker picks them up; the rest run here. One MLflow
parent run holds every stage's nested run. The evaluation report, a metrics table, a link
to the MLflow run and a progress bar are Prefect artifacts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.runtime import flow_run

from components.eval.report import SAFETY_LABELS
from components.loop.labeling import labels_pending
from components.params import Params, load_params, params_file
from components.paths import DATA, EVALUATION, PEOPLE, round_root
from components.registry import data_version, params_hash
from components.stages import STAGES
from components.tracking import configure
from flows import warm
from flows.stage import run_cli, run_subprocess, stage_flow, subprocess_env

MLFLOW_UI = os.environ.get("INSTRUCTFLOW_MLFLOW_UI", "http://127.0.0.1:5000")


@flow(name="data", log_prints=True)
def data_flow(params: Params, root: str, regenerate: bool = False) -> str:
    """Write the embedded default world when data/ holds no data (or when asked); version it with DVC."""

    project = Path(root)
    logger = get_run_logger()
    if regenerate or not any((project / DATA).glob("*.jsonl")):
        with params_file(params) as path:
            args = ["data", "generate", "--params", str(path)]
            run_cli(args, project, subprocess_env(), "data generate", params.orchestration.warm_start)
    else:
        logger.info("using the data in %s (regenerate=True rewrites it)", project / DATA)

    return data_version(project)


@flow(name="round", flow_run_name="round-{number}", log_prints=True)
def round_flow(number: int, params: Params, root: str, parent_run_id: str | None = None) -> dict:
    """One round of the feedback loop: sample, label, retrain the RM, PPO, evaluate (`instructflow round N`).

    With `pipeline.labels: human` the flow run pauses until the round's labels are in
    (`instructflow label serve --round N`), then goes on when resumed from the UI.
    """

    from prefect.flow_runs import pause_flow_run

    project, env = Path(root), subprocess_env(parent_run_id)
    with params_file(params) as path:
        args, warm_start = ["round", str(number), "--params", str(path)], params.orchestration.warm_start
        if params.pipeline.labels == "human":
            run_cli([*args, "--prepare-only"], project, env, "round tasks", warm_start)
            while (pending := labels_pending(round_root(project, number))) > 0:
                get_run_logger().info("round %d: %d tasks await labels: instructflow label serve --round %d",
                                      number, pending, number)  # fmt: skip
                pause_flow_run(timeout=7 * 24 * 3600, key=f"labels-round-{number}")
        run_cli(args, project, env, f"round {number}", warm_start)
    return json.loads((round_root(project, number) / "round.json").read_text(encoding="utf-8"))


@flow(name="people", log_prints=True)
def people_flow(params: Params, root: str, parent_run_id: str | None = None) -> dict | None:
    """With `evaluate.people`: pause until people have ranked the evaluation's blinded pairs
    (`instructflow label serve --evaluate`), then evaluate again with their verdicts; None when
    nothing was pending."""
    from prefect.flow_runs import pause_flow_run

    from components.loop.people import current

    project, evaluation, attempt = Path(root), None, 0
    while (folder := current(project / PEOPLE)) is not None and (pending := labels_pending(folder)) > 0:
        get_run_logger().info("evaluation: %d blinded pairs await people: instructflow label serve --evaluate", pending)
        attempt += 1
        pause_flow_run(timeout=7 * 24 * 3600, key=f"people-{folder.name}-{attempt}")
        evaluation = dispatch("evaluate", params, project, parent_run_id)  # the labels are in its cache key
    return evaluation


def commit_rounds(root: Path, rounds: int) -> str:
    """Append the rounds' comparisons to data/ and record the new data version with DVC when the project has one."""
    from components.loop.samples import publish  # imports torch: only when rounds ran

    added = publish(root, rounds)
    logger = get_run_logger()
    if added and (root / ".dvc").is_dir():
        import sys

        run_subprocess([sys.executable, "-m", "dvc", "add", "-q", "data"], root, dict(os.environ), "dvc add data")
    logger.info("data/comparisons.jsonl: %d comparisons from rounds 2..%d added", added, rounds)
    return data_version(root)


def mlflow_parent(root: Path, params: Params):
    """The parent MLflow run of this pipeline run (None when tracking is off)."""
    if os.environ.get("INSTRUCTFLOW_TRACKING", "on") == "off":
        return None
    import mlflow

    experiment_id = configure(root)
    tags = {"prefect.flow_run_id": str(flow_run.id or ""), "instructflow.params_hash": params_hash(params)}
    return mlflow.start_run(experiment_id=experiment_id, run_name=f"rlhf-pipeline {flow_run.name or ''}", tags=tags)


# How often the pipeline asks whether a dispatched stage finished: Prefect's 5 s default leaves the
# worker idle for half of it on average after every stage; a state read is one small API call.
DEPLOYMENT_POLL_SECONDS = 1.0


def dispatch(name: str, params: Params, root: Path, parent: str | None) -> dict:
    """One stage: through its deployment when configured, else as a local subflow."""
    o = params.orchestration
    if o.mode == "deployments" and name in o.deployment_stages:
        from prefect.deployments import run_deployment

        run = run_deployment(
            f"stage/{name}",
            parameters={
                "name": name,
                "params": params.model_dump(by_alias=True, mode="json"),
                "root": str(root),
                "parent_run_id": parent,
            },
            as_subflow=True,
            poll_interval=DEPLOYMENT_POLL_SECONDS,
        )
        if not run.state.is_completed():
            raise RuntimeError(f"stage {name} (deployment stage/{name}) ended {run.state.name}: {run.state.message}")
        return json.loads((root / STAGES[name].metrics).read_text(encoding="utf-8"))
    return stage_flow(name, params, str(root), parent)


def publish(root: Path, results: dict[str, dict], parent) -> None:
    """Prefect artifacts: the evaluation report, the metrics table, the MLflow run."""
    report = root / EVALUATION / "report.md"
    if report.exists():
        create_markdown_artifact(
            report.read_text(encoding="utf-8"),
            key="evaluation-report",
            description="base vs SFT vs PPO on the test split",
        )
    evaluation = results.get("evaluate", {})
    keys = ("win_rate_vs_sft", "gold_score", *SAFETY_LABELS, "corpus_perplexity", "kl_to_sft")
    rows = [{"metric": k, **evaluation[k]} for k in keys if k in evaluation]
    if rows:
        create_table_artifact(rows, key="evaluation-metrics", description="evaluate.json")
    if parent is not None:
        url = f"{MLFLOW_UI}/#/experiments/{parent.info.experiment_id}/runs/{parent.info.run_id}"
        hint = "start the UI with `mlflow ui --backend-store-uri sqlite:///mlflow.db`"
        create_link_artifact(url, link_text="MLflow parent run", key="mlflow-run", description=hint)


@flow(name="rlhf-pipeline", log_prints=True)
def rlhf_pipeline(
    params: Params | None = None, root: str = ".", regenerate: bool = False, commit_data: bool = True
) -> dict:
    """The whole recipe on PARAMS in the project folder ROOT; returns every stage's metrics.

    With `pipeline.rounds` > 1 each further round is a subflow; with COMMIT_DATA the rounds'
    comparisons then join data/ (with their `round`) and `dvc add data` records the new version.
    """
    params = params or load_params(Path(root) / "params.yaml")  # None: the project's own params.yaml
    project = Path(root).resolve()
    results: dict[str, dict] = {}
    progress = create_progress_artifact(0.0, key="pipeline-progress", description="stages finished")
    names = ["data", *STAGES]
    if params.orchestration.warm_start and warm.available():
        warm.HELPER.prewarm(subprocess_env())  # it imports the stack while the data stage runs
    parent = mlflow_parent(project, params)
    try:
        version = data_flow(params, str(project), regenerate)
        if parent is not None:
            import mlflow

            mlflow.set_tag("data_version", version)
        update_progress_artifact(progress, 100 / len(names))
        parent_id = parent.info.run_id if parent else None
        for i, name in enumerate(STAGES, start=2):
            if name == "rounds":
                for r in range(2, params.pipeline.rounds + 1):
                    round_flow(r, params, str(project), parent_id)
            results[name] = dispatch(name, params, project, parent_id)
            if name == "evaluate" and params.evaluate.people:
                results[name] = people_flow(params, str(project), parent_id) or results[name]
            update_progress_artifact(progress, 100 * i / len(names))
        if params.pipeline.rounds > 1 and commit_data:
            results["data_version_after_rounds"] = commit_rounds(project, params.pipeline.rounds)
            if parent is not None:
                import mlflow

                mlflow.set_tag("data_version_after_rounds", results["data_version_after_rounds"])
        publish(project, results, parent)
    except BaseException:
        if parent is not None:
            import mlflow

            mlflow.end_run("FAILED")
        raise
    if parent is not None:
        import mlflow

        mlflow.log_metrics(
            {
                f"{k}.{m}": v
                for k in ("win_rate_vs_sft", "gold_score")
                for m, v in results["evaluate"].get(k, {}).items()
                if v is not None
            }
        )
        mlflow.end_run()
    results["mlflow_run_id"] = parent.info.run_id if parent else None
    results["data_version"] = version
    return results
