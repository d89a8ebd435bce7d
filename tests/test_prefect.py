"""The pipeline through Prefect: a real server, a process worker on the `gpu` pool, deployments.

One end-to-end run of the tiny profile with the training stages dispatched as deployments
(`orchestration.mode: deployments`), then the same flow again in local mode: every stage is a
cache hit, the way a re-run after a failure skips what finished.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from components.data.io import read_jsonl
from components.stages import STAGES

from .conftest import ROOT, TINY, start_prefect_server, stop, tool_env

pytestmark = pytest.mark.slow
ROUND_TWO = ["--set", "pipeline.rounds=2"]  # the feedback loop runs end to end too


@pytest.fixture(scope="module")
def server_env(tmp_path_factory: pytest.TempPathFactory):
    """A real `prefect server start` of this module's own (its flow runs and artifacts are all this test's)."""
    server, env = start_prefect_server(
        tmp_path_factory.mktemp("prefect_home"),
        PREFECT_WORKER_QUERY_SECONDS="1",  # pick up each stage's run at once, not every 10 s
        PREFECT_WORKER_PREFETCH_SECONDS="1",
    )
    try:
        yield env
    finally:
        stop(server)


def project_copy(tiny_data: Path, path: Path) -> Path:
    """What a checkout holds: a git+DVC repo with the flows, params, prefect.yaml and the tiny data."""
    path.mkdir(parents=True)
    for name in ("params.yaml", "prefect.yaml"):
        shutil.copy(ROOT / name, path / name)
    shutil.copytree(ROOT / "flows", path / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(tiny_data, path / "data")
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"],
                    ["dvc", "add", "-q", "data"]):  # fmt: skip
        subprocess.run(command, cwd=path, env=tool_env(), check=True, capture_output=True)
    return path


def instructflow(args: list[str], cwd: Path, env: dict, log: Path) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "components.cli", *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=900)  # fmt: skip
    log.write_text(result.stdout + result.stderr)
    assert result.returncode == 0, f"instructflow {' '.join(args)} failed:\n{(result.stdout + result.stderr)[-5000:]}"
    return result


def api(env: dict, path: str, body: dict | None = None) -> list[dict]:
    """POST a filter to the Prefect REST API of the server ENV points at."""
    request = urllib.request.Request(f"{env['PREFECT_API_URL']}/{path}", data=json.dumps(body or {}).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_pipeline_runs_through_deployments_on_a_process_worker_then_caches(
    server_env: dict, tiny_data: Path, tmp_path: Path
) -> None:
    project = project_copy(tiny_data, tmp_path / "project")
    env = {**server_env, "INSTRUCTFLOW_ROOT": str(project)}
    instructflow(["deploy"], project, env, tmp_path / "deploy.log")
    worker_log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", "gpu"],
                              cwd=project, env=env, stdout=worker_log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        args = [
            "run",
            "--profile",
            str(TINY),
            "--set",
            "orchestration.mode=deployments",
            *ROUND_TWO,
            "--no-commit-data",
        ]
        first = instructflow(args, project, env, tmp_path / "run1.log")
    finally:
        stop(worker)
        worker_log.close()
    assert "Prefect flow run:" in first.stdout and "MLflow parent run:" in first.stdout
    deployments = {d["id"]: d["name"] for d in api(env, "deployments/filter")}
    assert set(deployments.values()) >= {"pipeline", "pretrain", "sft", "rm", "judge_rm", "select_sft", "ppo"}
    runs = api(env, "flow_runs/filter")
    done = [r for r in runs if r["deployment_id"] and r["state_type"] == "COMPLETED"]
    dispatched = {deployments[r["deployment_id"]] for r in done}
    assert dispatched == {"pretrain", "sft", "rm", "judge_rm", "select_sft", "ppo"}, (
        tmp_path / "worker.log"
    ).read_text()[-3000:]
    artifacts = {a["key"]: a for a in api(env, "artifacts/filter") if a["key"]}
    assert {"evaluation-report", "evaluation-metrics", "mlflow-run", "pipeline-progress"} <= set(artifacts)
    assert "gold win rate vs SFT" in artifacts["evaluation-report"]["data"]
    assert (project / "artifacts" / "metrics" / "register.json").exists()
    assert any(r["name"] == "round-2" and r["state_type"] == "COMPLETED" for r in runs)  # the round subflow
    rounds = json.loads((project / "artifacts" / "metrics" / "rounds.json").read_text())
    assert [row["round"] for row in rounds] == [1, 2] and rounds[1]["new_comparisons"] > 0
    data_dvc = (project / "data.dvc").read_text()

    # The same flow again, every stage here: the cache skips all that finished (the round is reused),
    # then the round's comparisons join data/ as its next DVC version.
    second = instructflow(["run", "--profile", str(TINY), *ROUND_TWO], project, env, tmp_path / "run2.log")
    cached = {line.split("Task run '")[1].split("'")[0] for line in second.stderr.splitlines()
              if "Finished in state Cached" in line and "Task run '" in line}  # fmt: skip
    assert cached == set(STAGES)
    grown = read_jsonl(project / "data" / "comparisons.jsonl")
    assert sum(c.get("round") == 2 for c in grown) == rounds[1]["new_comparisons"]
    assert (project / "data.dvc").read_text() != data_dvc
