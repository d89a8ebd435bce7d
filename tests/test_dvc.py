"""DVC: dvc.yaml agrees with the stage table, data.dvc matches regenerated data, `dvc repro` runs."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from components.params import Params
from components.stages import STAGES

from .conftest import ROOT, daemon_log, tool_env


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=tool_env(), capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def entries(items: list) -> list[str]:
    """dvc.yaml lists plain paths or {path: options}."""
    return [next(iter(i)) if isinstance(i, dict) else i for i in items]


def test_dvc_yaml_agrees_with_the_stage_table() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert list(stages) == list(STAGES)
    for name, spec in stages.items():
        stage = STAGES[name]
        assert spec["cmd"] == f"instructflow stage {name}"
        assert entries(spec["deps"]) == list(stage.deps)
        assert entries(spec.get("outs", [])) == list(stage.outs)
        assert spec["params"] == list(stage.params)
        assert entries(spec["metrics"]) == [stage.metrics]


def test_repo_config_turns_analytics_off() -> None:
    assert "analytics = false" in (ROOT / ".dvc" / "config").read_text()


def git_dvc_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    run(["git", "init", "-q"], path)
    run(["git", "config", "user.email", "test@example.com"], path)
    run(["git", "config", "user.name", "test"], path)
    shutil.copytree(ROOT / ".dvc", path / ".dvc", ignore=shutil.ignore_patterns("cache", "tmp"))
    return path


def test_generate_recreates_exactly_what_data_dvc_records(tmp_path: Path) -> None:
    """No remote is reachable from a fresh clone: the default params must rebuild the recorded bytes."""
    repo = git_dvc_repo(tmp_path / "repo")
    shutil.copy(ROOT / "params.yaml", repo / "params.yaml")
    run(["instructflow", "data", "generate", "--out", "data"], repo)
    run(["dvc", "add", "-q", "data"], repo)
    recorded = yaml.safe_load((ROOT / "data.dvc").read_text())["outs"][0]
    rebuilt = yaml.safe_load((repo / "data.dvc").read_text())["outs"][0]
    assert rebuilt == recorded, "data.dvc is stale: run `instructflow data generate && dvc add data` and commit"
    assert "up to date" in run(["dvc", "status", "data.dvc"], repo).stdout


@pytest.mark.slow
def test_dvc_repro_runs_the_pipeline_and_then_skips(tmp_path: Path, tiny_data: Path, tiny_params: Params) -> None:
    repo = git_dvc_repo(tmp_path / "repo")
    shutil.copy(ROOT / "dvc.yaml", repo / "dvc.yaml")
    shutil.copytree(ROOT / "components", repo / "components", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(tiny_data, repo / "data")
    # One round: the feedback loop's second round through a flow is test_prefect's, in-process test_rounds'.
    (repo / "params.yaml").write_text(yaml.safe_dump(tiny_params.model_dump(by_alias=True), sort_keys=False))
    run(["dvc", "add", "-q", "data"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "tiny"], repo)

    data_dvc = (repo / "data.dvc").read_text()
    first = run(["dvc", "repro"], repo).stdout
    for name in STAGES:
        assert f"Running stage '{name}'" in first
    children = [line for line in daemon_log(repo) if line.startswith("child ") and ": instructflow stage " in line]
    assert len(children) == len(STAGES) - 1, "every stage after the first ran in a child of one stage daemon"
    assert (repo / "artifacts" / "data" / "test" / "prompts.jsonl").exists()
    assert (repo / "dvc.lock").exists()
    again = run(["dvc", "repro"], repo).stdout
    assert "Running stage" not in again
    metrics = json.loads(run(["dvc", "metrics", "show", "--json"], repo).stdout)[""]["data"]
    assert metrics["artifacts/metrics/validate.json"]["data"]["success"] is True
    assert metrics["artifacts/metrics/prepare.json"]["data"]["splits_valid"] is True

    evaluation = metrics["artifacts/metrics/evaluate.json"]["data"]
    assert set(evaluation["win_rate_vs_sft"]) == {"base", "sft", "ppo"} and "promoted" in evaluation
    assert metrics["artifacts/metrics/register.json"]["data"]["policy_version"] == 1
    rounds = json.loads((repo / "artifacts" / "metrics" / "rounds.json").read_text())
    assert [row["round"] for row in rounds] == [1] and (repo / "data.dvc").read_text() == data_dvc
    plots = json.loads(run(["dvc", "plots", "show", "--json"], repo).stdout)["data"]
    assert {"ppo_reward_and_gold_vs_kl", "ppo_training", "artifacts/evaluation/safety.png"} <= set(plots)

    # An experiment that changes one late stage's params reruns that stage and what follows only.
    # `-S` writes floats such as 2e-05, which YAML reads back as a string: params still parse.
    changed = run(["dvc", "exp", "run", "-S", "ppo.kl_coef=0.05", "-S", "ppo.value_lr=2e-05"], repo).stdout
    assert "Running stage 'ppo'" in changed and "Running stage 'evaluate'" in changed
    assert "Running stage 'rm'" not in changed and "Running stage 'select_sft'" not in changed
    assert "value_lr: 2e-05" in (repo / "params.yaml").read_text()
    assert json.loads((repo / "artifacts" / "metrics" / "register.json").read_text())["policy_version"] == 2
