"""One pipeline stage as a Prefect flow: `instructflow stage NAME` in a subprocess.

The parent flow calls it as a subflow (orchestration.mode: local) or through its deployment
on the `gpu` work pool (mode: deployments). The stage runs in its own process so that a
stage's memory, threads and `accelerate launch` never leak into the flow's process; its
output goes line by line to the Prefect run logger.

Caching: the task's key is the stage name, its params sections, a digest of its inputs
(the files DVC would hash) and the task's source, with results persisted; so a re-run after
a failure skips the stages that finished, and any changed input or param re-runs the stage
and what follows. A stage whose outputs are missing, or no longer its own (`Stage.current`),
runs again whatever the cache says.
"""

from __future__ import annotations

import codecs
import json
import os
import subprocess
import sys
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import INPUTS, TASK_SOURCE

from components.hashing import tree_digest
from components.params import Params, load_params, params_file
from components.stages import STAGES
from flows import warm

CACHE = (INPUTS - "params" - "parent_run_id") + TASK_SOURCE


def forward(stream, logger, sentinel: str | None = None) -> int | None:
    """Send a process's output to the run logger, one record per line or progress update.

    Until the end of STREAM, or with SENTINEL until the line that starts with it, whose rest is
    the exit status returned (None when the stream ends first).
    """
    buffer, decoder = "", codecs.getincrementaldecoder("utf-8")(errors="replace")
    for chunk in iter(lambda: os.read(stream.fileno(), 4096), b""):  # what is there, not a full block
        buffer += decoder.decode(chunk).replace("\r", "\n")
        *lines, buffer = buffer.split("\n")
        for line in lines:
            if sentinel and line.startswith(sentinel):
                return int(line[len(sentinel) :])
            if line.strip():
                logger.info(line)
    if buffer.strip():
        logger.info(buffer)
    return None


def subprocess_env(parent_run_id: str | None = None) -> dict[str, str]:
    """The environment of a stage's subprocess: unbuffered output, explicit threads, the MLflow parent run."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    if parent_run_id:
        env["INSTRUCTFLOW_PARENT_RUN_ID"] = parent_run_id
    return env


def run_subprocess(args: list[str], root: Path, env: dict[str, str], what: str) -> None:
    logger = get_run_logger()
    logger.info("$ %s", " ".join(args))
    process = subprocess.Popen(args, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0)
    forward(process.stdout, logger)
    if process.wait() != 0:
        raise RuntimeError(f"{what} exited with {process.returncode}; its output is in the log above")


def forks_warm(warm_start: bool) -> bool:
    return warm_start and warm.available() and warm.HELPER.running()


def run_cli(args: list[str], root: Path, env: dict[str, str], what: str, warm_start: bool) -> None:
    """`instructflow ARGS` in a process of its own, its output in the run log: forked from the warm
    helper when WARM_START (orchestration.warm_start) and the run started one (the pipeline does,
    at its start), else a fresh interpreter. A deployment's flow run on a worker runs one stage and
    starts no helper: there `instructflow stage` hands the stage to the folder's stage daemon
    (components/daemon.py), which outlives the flow run and serves the next deployment's stage."""
    if not forks_warm(warm_start):
        return run_subprocess([sys.executable, "-m", "components.cli", *args], root, env, what)
    logger = get_run_logger()
    logger.info("$ instructflow %s (forked from the warm helper, flows/warm.py)", " ".join(args))
    status = warm.HELPER.run(args, root, env, lambda stream, sentinel: forward(stream, logger, sentinel))
    if status != 0:
        raise RuntimeError(f"{what} exited with {status}; its output is in the log above")


@task(cache_policy=CACHE, persist_result=True, task_run_name="{name}")
def execute_stage(name: str, sections: dict, inputs_digest: str, root: str, params: dict, parent_run_id: str | None):
    """Run the stage; SECTIONS and INPUTS_DIGEST are what the cache key sees of params and inputs."""
    with params_file(params) as path:
        args, warm_start = ["stage", name, "--params", str(path)], params["orchestration"]["warm_start"]
        run_cli(args, Path(root), subprocess_env(parent_run_id), f"stage {name}", warm_start)
    return json.loads((Path(root) / STAGES[name].metrics).read_text(encoding="utf-8"))


@flow(name="stage", flow_run_name="{name}", log_prints=True)
def stage_flow(name: str, params: Params | None = None, root: str = ".", parent_run_id: str | None = None) -> dict:
    """Run one stage of the pipeline in ROOT (a project folder) with PARAMS."""
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    params = params or load_params(Path(root) / "params.yaml")  # None: the project's own params.yaml
    stage, project = STAGES[name], Path(root).resolve()
    tree = params.model_dump(by_alias=True, mode="json")
    outputs_missing = not all((project / out).exists() for out in (*stage.outs, stage.metrics))
    outputs_missing = outputs_missing or (stage.current is not None and not stage.current(project))
    retries = params.orchestration.retries if stage.kind == "training" else 0  # training resumes from its checkpoint
    run = execute_stage.with_options(retries=retries, refresh_cache=outputs_missing or None)
    return run(
        name,
        {k: tree[k] for k in stage.params},
        tree_digest(project, (*stage.deps, *(w for w in stage.watches if (project / w).exists()))),
        str(project),
        tree,
        parent_run_id,
    )
