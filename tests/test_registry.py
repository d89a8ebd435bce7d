"""The registry: register, candidate/champion aliases by the gates, lineage tags, rollback, chat."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from components.params import Params
from components.registry import CANDIDATE, CHAMPION, RegistryError, rollback
from components.stages import STAGES

from .conftest import ROOT, tool_env

POLICY = "instructflow-policy"


@pytest.fixture
def project(ppo_root: Path, tmp_path: Path) -> Path:
    """A copy of the PPO project with its own MLflow store and a data.dvc, as a checkout has.

    One per test: each test's registry starts empty, whichever order the tests run in.
    """
    root = tmp_path / "project"
    shutil.copytree(ppo_root, root, ignore=shutil.ignore_patterns("mlflow.db", "mlruns"))
    (root / "data.dvc").write_text("outs:\n- md5: 0123abcd.dir\n  path: data\n")
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    return root


def gated(params: Params, min_win_rate: float) -> Params:
    """Only the win-rate gate decides: the tiny models' safety rates on 16 prompts are noise."""
    gates = {"min_win_rate": min_win_rate, "safety_beats_base": False, "max_safety_regression": None,
             "max_hallucination_rate": 1.0, "min_harmful_refusal_rate": 0.0,
             "min_false_premise_correction_rate": 0.0}  # fmt: skip
    return params.model_copy(update={"promotion": params.promotion.model_copy(update=gates)})


def evaluate_and_register(params: Params, root: Path) -> tuple[dict, dict]:
    return STAGES["evaluate"].run(params, root), STAGES["register"].run(params, root)


def aliases(root: Path) -> dict[str, str]:
    from components.registry import client

    return {k: str(v) for k, v in client(root).get_registered_model(POLICY).aliases.items()}


def chat(root: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "components.cli", "chat", "--params", str(ROOT / "params.yaml"), *args]
    return subprocess.run(command, cwd=root, env=tool_env(), capture_output=True, text=True, timeout=300)


def test_chat_says_clearly_when_there_is_no_champion(project: Path) -> None:
    result = chat(project, "--prompt", "hello")
    assert result.returncode == 1
    assert "no champion yet" in result.stderr


def test_registry_promotes_only_through_the_gates_and_rolls_back(project: Path, tiny_params: Params) -> None:
    from components.registry import client

    evaluation, first = evaluate_and_register(gated(tiny_params, 0.0), project)  # any candidate beats SFT
    assert evaluation["promoted"] and first["promoted"]
    assert aliases(project) == {CANDIDATE: "1", CHAMPION: "1"}
    version = client(project).get_model_version(POLICY, "1")
    assert version.tags["data_version"] == "0123abcd.dir"
    assert len(version.tags["params_hash"]) == 16 and version.tags["git_commit"]
    assert "win rate vs sft" in version.tags["promotion_reasons"]
    assert str(client(project).get_registered_model("instructflow-reward-model").aliases[CHAMPION]) == "1"

    evaluation, second = evaluate_and_register(gated(tiny_params, 1.0), project)  # nothing beats a gate of 1
    assert evaluation["reference"] == "champion" and "champion" in evaluation["gold_score"]
    assert not second["promoted"] and second["champion_version"] == 1
    assert aliases(project) == {CANDIDATE: "2", CHAMPION: "1"}

    _, third = evaluate_and_register(gated(tiny_params, 0.0), project)
    assert third["previous_champion_version"] == 1
    assert aliases(project) == {CANDIDATE: "3", CHAMPION: "3"}
    assert rollback(project, tiny_params.promotion) == ("3", "1")
    assert aliases(project)[CHAMPION] == "1"
    with pytest.raises(RegistryError, match="first champion"):
        rollback(project, tiny_params.promotion)


def test_the_champion_loads_with_mlflow_and_answers_in_chat(project: Path, tiny_params: Params) -> None:
    import mlflow

    evaluate_and_register(gated(tiny_params, 0.0), project)  # a fresh project: its first candidate is champion
    from components.tracking import configure

    configure(project)
    components = mlflow.transformers.load_model(f"models:/{POLICY}@{CHAMPION}", return_type="components")
    assert (
        components["tokenizer"].chat_template
        and components["model"].config.model_type == tiny_params.model.architecture
    )
    once = chat(project, "--prompt", "What food does Tara like?", "--max-new-tokens", "8")
    assert once.returncode == 0, once.stderr
    from components.models.generation import answer

    question = [{"role": "user", "content": "What food does Tara like?"}]
    expected = answer(components["model"].eval(), components["tokenizer"], [question], 8)[0]
    assert once.stdout == expected + "\n"  # the champion's own greedy answer (a tiny model's may be empty)
    session = subprocess.run(
        [sys.executable, "-m", "components.cli", "chat", "--max-new-tokens", "6"],
        cwd=project, env=tool_env(), input="Hi! My name is Uma.\nWhat is my name?\n/exit\n", capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert session.returncode == 0, session.stderr
    first = [{"role": "user", "content": "Hi! My name is Uma."}]
    model, tok = components["model"].eval(), components["tokenizer"]
    reply = answer(model, tok, [first], 6)[0]
    second = [*first, {"role": "assistant", "content": reply}, {"role": "user", "content": "What is my name?"}]
    assert session.stdout.count("bot> ") == 2
    assert f"bot> {reply}\n" in session.stdout
    assert f"bot> {answer(model, tok, [second], 6)[0]}\n" in session.stdout  # answered with the first turn in view


DIE_AFTER_FIRST_ALIAS = """
import os, sys
from pathlib import Path
from mlflow import MlflowClient
from components.params import load_params
from components.stages import STAGES

alias = MlflowClient.set_registered_model_alias
def dying(self, *args, **kwargs):
    alias(self, *args, **kwargs)
    os._exit(9)  # the process dies between two alias writes, as a kill would leave it
MlflowClient.set_registered_model_alias = dying
STAGES["register"].run(load_params(sys.argv[1]), Path.cwd())
"""


def rm_aliases(root: Path) -> dict[str, str]:
    from components.registry import client

    model = client(root).get_registered_model("instructflow-reward-model")
    return {k: str(v) for k, v in model.aliases.items()}


def policy_rm(root: Path, alias: str) -> str:
    from components.registry import client

    version = client(root).get_model_version_by_alias(POLICY, alias)
    return version.tags["reward_model_version"]


def test_a_register_killed_between_alias_writes_leaves_the_policy_consistent_and_the_next_repairs(
    project: Path, tiny_params: Params
) -> None:
    from components.params import params_file

    params = gated(tiny_params, 0.0)
    evaluate_and_register(params, project)  # v1 champion, its RM v1 too
    STAGES["evaluate"].run(params, project)
    with params_file(params) as path:
        killed = subprocess.run(
            [sys.executable, "-c", DIE_AFTER_FIRST_ALIAS, str(path)], cwd=project, env=tool_env(), capture_output=True
        )
    assert killed.returncode == 9, killed.stderr[-2000:]
    # The policy's first alias moved: it names a whole version, whose reward model exists.
    assert aliases(project) == {CANDIDATE: "2", CHAMPION: "1"} and policy_rm(project, CANDIDATE) == "2"
    STAGES["register"].run(params, project)  # the next register repairs, then moves both
    assert aliases(project) == {CANDIDATE: "3", CHAMPION: "3"}
    assert rm_aliases(project) == {CANDIDATE: policy_rm(project, CANDIDATE), CHAMPION: policy_rm(project, CHAMPION)}
    assert rollback(project, tiny_params.promotion) == ("3", "1")
    assert rm_aliases(project)[CHAMPION] == policy_rm(project, CHAMPION) == "1"
