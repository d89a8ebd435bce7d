"""Faults in training: a run killed or its checkpoint damaged ends with the same weights and the same
history as an uninterrupted run; a diverging run stops with one clear error and saves nothing."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from components.errors import StageError
from components.lock import project_lock
from components.params import Params
from components.paths import METRICS
from components.stages import STAGES
from components.train.core import Diverged, Interrupted

from . import fit_script
from .conftest import ROOT, TINY, tool_env
from .test_training import assert_same


def without_times(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


@pytest.mark.parametrize("stop_at", [3, 8])  # mid-run, and right after the last checkpoint
def test_a_resumed_run_reports_the_whole_run(tmp_path: Path, stop_at: int) -> None:
    straight = fit_script.run(tmp_path / "a.safetensors", tmp_path / "a")
    with pytest.raises(Interrupted):
        fit_script.run(tmp_path / "unused.safetensors", tmp_path / "b", stop_after=stop_at)
    resumed = fit_script.run(tmp_path / "b.safetensors", tmp_path / "b")
    assert len(resumed["history"]) == len(straight["history"]) == 8
    assert without_times(resumed["history"]) == without_times(straight["history"])
    assert resumed["loss"] == straight["loss"]


# What accelerate writes: the weights, the optimizer, the schedule, the RNG; and our own step file.
FILES = ["model.safetensors", "optimizer.bin", "custom_checkpoint_0.pkl", "random_states_0.pkl", "trainer_state.json"]


@pytest.mark.parametrize("damaged", FILES)
def test_a_damaged_checkpoint_is_set_aside_and_the_run_ends_as_an_uninterrupted_one(
    tmp_path: Path, damaged: str, caplog: pytest.LogCaptureFixture
) -> None:
    fit_script.run(tmp_path / "a.safetensors", tmp_path / "a", dropout=0.1)
    with pytest.raises(Interrupted):
        fit_script.run(tmp_path / "unused.safetensors", tmp_path / "b", dropout=0.1, stop_after=5)
    state = tmp_path / "b" / "state"
    files = sorted(f.name for f in state.iterdir())
    target = state / damaged
    assert target.exists(), files
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])  # a write cut short
    with caplog.at_level(logging.WARNING, logger="components.train.core"):
        resumed = fit_script.run(tmp_path / "b.safetensors", tmp_path / "b", dropout=0.1)
    assert f"{state}: checkpoint set aside" in caplog.text and damaged in caplog.text
    assert resumed["steps"] == 8 and resumed["history"][0]["step"] == 1  # from the start
    assert_same(tmp_path / "a.safetensors", tmp_path / "b.safetensors")


def test_a_diverging_fit_stops_with_the_step_and_the_knob(tmp_path: Path) -> None:
    expected = r"train: the loss at step \d+ \(epoch 1\) is nan.*Lower train\.lr \(now 1e\+10\)"
    with pytest.raises(Diverged, match=expected):
        fit_script.run(tmp_path / "x.safetensors", tmp_path / "run", lr=1e10, grad_clip=0.0)
    assert not (tmp_path / "x.safetensors").exists()


def project_copy(root: Path, to: Path) -> Path:
    shutil.copytree(root / "data", to / "data")
    shutil.copytree(root / "artifacts", to / "artifacts")
    return to


@pytest.mark.parametrize(
    ("stage", "section", "project"),
    [("sft", "sft", "trained_root"), ("rm", "rm", "trained_root"), ("ppo", "ppo", "ppo_root")],
)
def test_a_diverging_stage_fails_clearly_and_keeps_its_last_good_outputs(
    request: pytest.FixtureRequest, tiny_params: Params, tmp_path: Path, stage: str, section: str, project: str
) -> None:
    root = project_copy(request.getfixturevalue(project), tmp_path)
    metrics = root / "artifacts" / "metrics" / f"{stage}.json"
    before = metrics.read_text()
    model = root / "artifacts" / "models" / stage
    weights = sorted(p.relative_to(model) for p in model.rglob("*.safetensors"))
    diverging = tiny_params.model_copy(
        update={section: getattr(tiny_params, section).model_copy(update={"lr": 1e10, "grad_clip": 0.0})}
    )
    with pytest.raises(Diverged, match=rf"^{section}: .* is (nan|inf).*Lower {section}\.lr \(now 1e\+10\)"):
        STAGES[stage].run(diverging, root)
    assert metrics.read_text() == before  # strict JSON, and still the model's
    assert sorted(p.relative_to(model) for p in model.rglob("*.safetensors")) == weights
    for f in model.rglob("*.safetensors"):
        assert all(torch.isfinite(t).all() for t in load_file(str(f)).values()), f


HOLD = """
import sys, time
from pathlib import Path
from components.lock import project_lock
with project_lock(Path(sys.argv[1]), "instructflow run"):
    print("held", flush=True)
    time.sleep(120)
"""


def test_one_run_per_project_folder_and_a_killed_holder_frees_it(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
        second = subprocess.run(
            [sys.executable, "-m", "components.cli", "run"], cwd=tmp_path, env=tool_env(), capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip
        assert second.returncode == 1, second.stderr
        assert f"in use by pid {holder.pid} on " in second.stderr and "(instructflow run, since" in second.stderr
        assert "Traceback" not in second.stderr
        with pytest.raises(StageError, match=f"pid {holder.pid}"):
            with project_lock(tmp_path, "instructflow round 2"):
                pass
    finally:
        holder.kill()  # kill -9: the kernel drops its lock
        holder.wait()
    with project_lock(tmp_path, "instructflow round 2"):
        child = subprocess.run(
            [sys.executable, "-c", HOLD.replace("time.sleep(120)", ""), str(tmp_path)], capture_output=True, text=True
        )
        assert child.stdout.strip() == "held", child.stderr  # a command the holder starts works under its lock


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()}


def test_a_ppo_that_fails_at_its_last_write_leaves_the_last_outputs_whole_and_resumes(
    ppo_root: Path, tiny_params: Params, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from components.train import ppo

    root = project_copy(ppo_root, tmp_path)
    artifacts = root / "artifacts"
    before = {name: folder_bytes(artifacts / name) for name in ("models/ppo", "plots", "metrics")}
    changed = tiny_params.model_copy(update={"ppo": tiny_params.ppo.model_copy(update={"seed": 7})})

    def disk_full(history: list[dict], plots: Path) -> None:
        raise OSError(28, "No space left on device", str(plots / ppo.CURVE))

    monkeypatch.setattr(ppo, "write_history", disk_full)
    with pytest.raises(OSError, match="No space left"):
        STAGES["ppo"].run(changed, root)
    assert {name: folder_bytes(artifacts / name) for name in before} == before  # nothing half-replaced
    assert (artifacts / "checkpoints" / "ppo" / "state").exists(), "the finished training is kept to resume"
    monkeypatch.undo()
    metrics = STAGES["ppo"].run(changed, root)
    assert metrics["episodes"] == tiny_params.ppo.episodes // tiny_params.ppo.batch_size * tiny_params.ppo.batch_size
    assert (artifacts / "plots" / ppo.CURVE).exists() and metrics["reward"] is not None
    assert folder_bytes(artifacts / "models/ppo") != before["models/ppo"]


@pytest.mark.usefixtures("prefect_server")  # flows run here: the session's server
def test_validating_another_folder_does_not_leave_the_flow_a_stale_validation(
    tiny_data: Path, tiny_params: Params, tmp_path: Path
) -> None:
    """`instructflow validate --data OTHER` rewrites validate.json; the flow's cached validate must
    not stand for the project's data after it, or prepare refuses good data."""
    from components.stages import validated_here
    from flows.stage import stage_flow

    root, other = tmp_path / "project", tmp_path / "other"
    shutil.copytree(tiny_data, root / "data")
    shutil.copytree(tiny_data, other)
    (other / "prompts.jsonl").write_text((other / "prompts.jsonl").read_text().splitlines()[0] + "\n")
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    stage_flow("validate", tiny_params, str(root))
    command = [sys.executable, "-m", "components.cli", "validate", "--data", str(other), "--profile", str(TINY)]
    done = subprocess.run(command, cwd=root, env=tool_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not validated_here(root)
    stage_flow("validate", tiny_params, str(root))  # the same inputs: a cache hit before
    assert validated_here(root)
    assert stage_flow("prepare", tiny_params, str(root))["records"]


def children(pid: int) -> dict[int, str]:
    """The processes whose parent is PID, with their command lines (Linux's /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from Linux's /proc")
def test_a_killed_run_takes_its_temporary_prefect_server_with_it(tmp_path: Path) -> None:
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    env = {k: v for k, v in tool_env().items() if k != "PREFECT_API_URL"}
    command = [sys.executable, "-m", "components.cli", "run", "--profile", str(TINY)]
    run = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (servers := [p for p, c in children(run.pid).items() if "uvicorn" in c]):
            assert run.poll() is None and time.monotonic() < deadline, "no temporary server started"
            time.sleep(0.2)
        time.sleep(1)
        others = children(run.pid)
    finally:
        run.kill()  # kill -9: no atexit, no finally
        run.wait()
    deadline = time.monotonic() + 20
    while alive(servers[0]) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in others:  # the stage it had started, if any, is not what this test is about
        if alive(pid) and pid != servers[0]:
            os.kill(pid, signal.SIGKILL)
    assert not alive(servers[0]), "the temporary Prefect server outlived its run"


def weights_of(folder: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {str(f.relative_to(folder)): load_file(str(f)) for f in sorted(folder.rglob("*.safetensors"))}


def stage_command(stage: str) -> list[str]:
    every = f"{stage}.checkpoint_every=1"  # a checkpoint every step: a kill lands between two
    return [sys.executable, "-m", "components.cli", "stage", stage, "--profile", str(TINY), "--set", every]


# What a resumed stage must report as the uninterrupted one did (times and speeds aside).
SAME = {"pretrain": ("loss", "valid_perplexity"), "sft": ("valid_loss", "valid_loss_by_epoch"),
        "ppo": ("episodes", "reward", "kl", "train_gold_score")}  # fmt: skip


@pytest.mark.parametrize(("stage", "reference"), [("pretrain", "trained_root"), ("sft", "trained_root"),
                                                  ("ppo", "ppo_root")])  # fmt: skip
def test_a_stage_killed_mid_run_resumes_to_the_weights_and_metrics_of_an_uninterrupted_run(
    request: pytest.FixtureRequest, trained_root: Path, tmp_path: Path, stage: str, reference: str
) -> None:
    """REFERENCE ran the stage uninterrupted, with the same params (checkpoints change no numbers)."""
    straight, killed = request.getfixturevalue(reference), project_copy(trained_root, tmp_path)
    shutil.copy(ROOT / "params.yaml", killed / "params.yaml")
    state = killed / "artifacts" / "checkpoints" / stage / "state" / "trainer_state.json"
    run = subprocess.Popen(stage_command(stage), cwd=killed, env=tool_env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)  # fmt: skip
    while not state.exists() and run.poll() is None:
        time.sleep(0.01)
    run.kill()  # kill -9, mid-run: a checkpoint exists and the stage has not finished
    assert run.wait() == -signal.SIGKILL and state.exists()
    resumed = subprocess.run(stage_command(stage), cwd=killed, env=tool_env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    model = Path(STAGES[stage].outs[0])  # models/base, models/sft, models/ppo
    a, b = weights_of(straight / model), weights_of(killed / model)
    assert a.keys() == b.keys() and a, (straight / model, sorted((straight / model).iterdir()))
    for name in a:
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), (name, key)
    metrics = [json.loads((root / METRICS / f"{stage}.json").read_text()) for root in (straight, killed)]
    assert {k: metrics[0][k] for k in SAME[stage]} == {k: metrics[1][k] for k in SAME[stage]}


def test_a_stage_waits_for_no_one_but_refuses_a_folder_a_run_holds(tmp_path: Path) -> None:
    """`dvc repro` (stage by stage) next to an `instructflow run` in one folder: the stage is refused."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
        env = {k: v for k, v in tool_env().items() if k not in ("PREFECT__FLOW_RUN_ID", "INSTRUCTFLOW_PROJECT_LOCK")}
        stage = subprocess.run([sys.executable, "-m", "components.cli", "stage", "validate"], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=120)  # fmt: skip
        assert stage.returncode == 1 and f"in use by pid {holder.pid}" in stage.stderr, stage.stderr
    finally:
        holder.kill()
        holder.wait()
