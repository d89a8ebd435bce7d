"""MLflow tracking for stages: one nested run per stage under the pipeline's parent run.

The store is `sqlite:///<root>/mlflow.db` with artifacts in `<root>/mlruns` unless
MLFLOW_TRACKING_URI says otherwise (an absolute URI, so workers in other folders share one
store). The parent run, when there is one, is named by INSTRUCTFLOW_PARENT_RUN_ID.
Only the main process logs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

EXPERIMENT = "instructflow"
PARENT_ENV = "INSTRUCTFLOW_PARENT_RUN_ID"
STORE_ENV = "INSTRUCTFLOW_MLFLOW_URI"


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def configure(root: Path) -> str:
    """Point MLflow at this project's store; create the experiment once. Returns the experiment id.

    The store is, in order: INSTRUCTFLOW_MLFLOW_URI (a round's stages log to the project's store),
    the user's MLFLOW_TRACKING_URI, or `<root>/mlflow.db`. The registry is the same store unless
    MLFLOW_REGISTRY_URI says otherwise.
    """
    import mlflow

    user = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    uri = os.environ.get(STORE_ENV) or user["MLFLOW_TRACKING_URI"] or f"sqlite:///{root.resolve() / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(user["MLFLOW_REGISTRY_URI"] or uri)
    # MLflow also exports both URIs to the environment; undo that, or a later project in this process
    # (or a subprocess in another folder) would be sent to this store.
    for name, value in user.items():
        os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        return experiment.experiment_id
    return mlflow.create_experiment(EXPERIMENT, artifact_location=(root.resolve() / "mlruns").as_uri())


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested metrics -> {"a.b": value}; MLflow takes flat names."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


class Tracker:
    """Logs numbers for one stage; does nothing on non-main processes or when disabled."""

    def __init__(self, active: bool):
        self.active = active
        self.last_step = 0  # the stage's summary goes here: at step 0 it would start every curve it shares a name with

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        self.last_step = self.last_step if step is None else max(self.last_step, step)
        if not self.active:
            return
        import mlflow

        numbers = {k: float(v) for k, v in flatten(metrics).items() if isinstance(v, int | float) and v == v}
        if numbers:
            mlflow.log_metrics(numbers, step=step)

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        if self.active:
            import mlflow

            mlflow.log_artifact(str(path), artifact_path=folder)

    def log_text(self, text: str, name: str) -> None:
        if self.active:
            import mlflow

            mlflow.log_text(text, name)


@contextmanager
def stage_run(stage: str, params: dict[str, Any], root: Path) -> Iterator[Tracker]:
    """An MLflow run for one stage (nested under the parent run when there is one)."""
    if not is_main_process() or os.environ.get("INSTRUCTFLOW_TRACKING", "on") == "off":
        yield Tracker(active=False)
        return
    import mlflow

    experiment_id = configure(root)
    parent = os.environ.get(PARENT_ENV)
    tags = {"instructflow.stage": stage, **({"mlflow.parentRunId": parent} if parent else {})}
    with mlflow.start_run(experiment_id=experiment_id, run_name=stage, tags=tags):
        mlflow.log_params({k: str(v)[:500] for k, v in flatten(params).items()})
        yield Tracker(active=True)
