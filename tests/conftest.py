from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from components.params import Params, load_params

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "tiny.yaml"
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"
DEFAULTS = load_params(ROOT / "params.yaml")


def section(name: str, **changes: object):
    """One params section as params.yaml has it, with CHANGES: a test names only what it varies."""
    return getattr(DEFAULTS, name).model_validate({**getattr(DEFAULTS, name).model_dump(), **changes})


# One thread is faster than two for the small tensors in these tests (DESIGN.md section 7).
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Prefect: no analytics (offline), and a PREFECT_HOME of this session's own so cached results
# and flow runs never leak between test sessions or into the user's ~/.prefect.
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="instructflow-prefect-")


def tool_env() -> dict[str, str]:
    """Environment for subprocesses: this interpreter's bin first on PATH, DVC analytics off."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def daemon_log(cwd: Path) -> list[str]:
    """The lines of the log of the stage daemon that serves CWD (components/daemon.py; its first line
    names the folder), or none."""
    from components import daemon

    for log in daemon.folder().glob("*.log"):
        lines = log.read_text().splitlines()
        if lines and lines[0].endswith(f" serves {cwd}"):
            return lines
    return []


def two_process_env() -> dict[str, str]:
    """tool_env for two processes: DDP on GPUs wants one per process, so with fewer than two GPUs
    they are hidden and the processes run on the CPU over gloo, as in CI."""
    import torch

    env = tool_env()
    if torch.cuda.device_count() < 2:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, and SIGKILL when it lingers (a Prefect worker may wait on its runner before exiting)."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=20)


def wait_healthy(url: str, process: subprocess.Popen, log: Path, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prefect server exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"no Prefect server at {url} after {seconds} s:\n{log.read_text()[-3000:]}")


def start_prefect_server(home: Path, **settings: str) -> tuple[subprocess.Popen, dict[str, str]]:
    """A real `prefect server start` on a free loopback port with PREFECT_HOME HOME, once healthy;
    and the environment (tool_env with SETTINGS) whose processes talk to it."""
    from components.ports import free_port

    port = free_port()
    env = {**tool_env(), "PREFECT_HOME": str(home), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api", **settings}
    log = home / "server.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_healthy(env["PREFECT_API_URL"], server, log)
    except BaseException:
        stop(server)
        raise
    return server, env


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """One Prefect server for every flow this test process runs, in it or in its subprocesses.

    Without it each flow run in the tests would start a temporary server of its own, and each
    fresh one spends many seconds of CPU migrating its database: the suite's largest fixed cost.
    Tests that run flows ask for it (`usefixtures`); the test of the temporary server
    itself removes PREFECT_API_URL from its command's environment.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server, env = start_prefect_server(Path(os.environ["PREFECT_HOME"]))
    os.environ["PREFECT_API_URL"] = env["PREFECT_API_URL"]  # for the subprocesses (tool_env)
    try:
        with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}):  # for this process
            yield env["PREFECT_API_URL"]
    finally:
        del os.environ["PREFECT_API_URL"]
        stop(server)


@pytest.fixture(autouse=True)
def own_mlflow_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every project a test makes logs to its own store: a URI an earlier test left in the
    environment (mlflow.set_tracking_uri exports one) would send them all to one store."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "INSTRUCTFLOW_MLFLOW_URI"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def two_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """For a stage run with resources.num_processes 2: its `accelerate launch` inherits the hidden GPUs."""
    hidden = two_process_env().get("CUDA_VISIBLE_DEVICES")
    if hidden is not None:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)


@pytest.fixture(scope="session")
def tiny_params() -> Params:
    return load_params(ROOT / "params.yaml", profile=TINY)


@pytest.fixture(scope="session")
def tiny_data(tiny_params: Params, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from components.world.generate import run_generate

    out = tmp_path_factory.mktemp("tiny") / "data"
    run_generate(tiny_params, out)
    return out


@pytest.fixture(scope="session")
def prepared_root(tiny_data: Path, tiny_params: Params, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder with the tiny data validated and split: what the training stages start from."""
    import shutil

    from components.stages import STAGES

    root = tmp_path_factory.mktemp("project")
    shutil.copytree(tiny_data, root / "data")
    for name in ("validate", "prepare"):
        STAGES[name].run(tiny_params, root)
    return root


@pytest.fixture(scope="session")
def trained_root(prepared_root: Path, tiny_params: Params) -> Path:
    """The tiny profile's pretrain, sft, rm and select_sft stages run once, tracked in a real MLflow store."""
    from components.stages import STAGES

    for name in ("pretrain", "sft", "rm", "judge_rm", "select_sft"):
        STAGES[name].run(tiny_params, prepared_root)
    return prepared_root


@pytest.fixture(scope="session")
def ppo_root(trained_root: Path, tiny_params: Params, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of trained_root with the tiny PPO stage run: what evaluate and register start from."""
    import shutil

    from components.stages import STAGES

    root = tmp_path_factory.mktemp("ppo_project")
    shutil.copytree(trained_root / "data", root / "data")
    shutil.copytree(trained_root / "artifacts", root / "artifacts", ignore=shutil.ignore_patterns("ppo", "plots"))
    STAGES["ppo"].run(tiny_params, root)
    return root


# The modules that take longest, longest first (their times: benchmarks/README.md, "The stage daemon").
# The workers take modules in this order (pyproject's addopts turn off xdist's reordering by test
# count, which puts a one-test module last), and a long module taken last leaves the others idle.
LONGEST_FIRST = (
    "test_prefect.py",
    "test_faults.py",
    "test_rounds.py",
    "test_benchmarks.py",
    "test_your_data.py",
    "test_dvc.py",
    "test_warm.py",
    "test_registry.py",
    "test_training_stages.py",
    "test_daemon.py",
    "test_your_data_without_corpus.py",
    "test_people.py",
    "test_ppo.py",
    "test_validate.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)


def resume_when_paused(label: Callable[[], bool], resumed: list, seconds: float = 300) -> None:
    """As a person in the Prefect UI would: once a flow run is paused and LABEL() has done the labelling
    (it returns False while there is nothing to label yet), resume that run and note its id in RESUMED."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType
    from prefect.flow_runs import resume_flow_run

    # The session's server holds every test's flow runs: ask it for the paused ones only.
    only_paused = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])))

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not resumed:
        time.sleep(1)
        with get_client(sync_client=True) as client:
            paused = client.read_flow_runs(flow_run_filter=only_paused)
        if paused and label():
            resume_flow_run(paused[0].id)
            resumed.append(paused[0].id)


def on_two_processes(params: Params) -> Params:
    """PARAMS with every training stage on two processes."""
    resources = params.resources.model_copy(update={"num_processes": 2, "processes": {}})
    return params.model_copy(update={"resources": resources})
