"""Screenshots of the Prefect and MLflow UIs for the README, and the check that both UIs serve.

Run in a project after `instructflow run` (same PREFECT_HOME, same mlflow.db):

    .venv/bin/python scripts/screenshots.py --out docs/images

It starts `prefect server start` and `mlflow server` on free loopback ports (unless
PREFECT_API_URL / --mlflow-url name running ones), opens headless Chromium (Debian's
/usr/bin/chromium, driven by Playwright; no browser download) and saves:
prefect-flow-run.png (the latest rlhf-pipeline run's graph), mlflow-sft-curves.png and
mlflow-ppo-curves.png (the SFT and PPO stage runs' metric charts against steps: losses; PPO's
reward, KL and gold), mlflow-model.png (the policy's registry page) and label-page.png (the
ranking page on a round's real task: fresh prompts, the PPO and SFT policies' own samples).
Exits non-zero, naming the page, when a UI does not serve.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from components.ports import free_port

CHROMIUM = os.environ.get("INSTRUCTFLOW_CHROMIUM", "/usr/bin/chromium")
# Without these, Chromium keeps trying to reach Google's hosts, which a closed network refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def wait_for(url: str, process: subprocess.Popen | None, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            sys.exit(f"{what} exited with {process.returncode} before serving {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"{what} does not answer at {url} after {seconds:.0f} s")


@contextlib.contextmanager
def server(command: list[str], health: str, what: str, env: dict[str, str]) -> Iterator[None]:
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(health, process, what)
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


def latest_pipeline_run(api: str) -> dict:
    import json

    body = json.dumps({"flows": {"name": {"any_": ["rlhf-pipeline"]}}, "sort": "START_TIME_DESC", "limit": 1})
    request = urllib.request.Request(f"{api}/flow_runs/filter", data=body.encode(), method="POST",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        runs = json.loads(response.read())
    if not runs:
        sys.exit(f"no rlhf-pipeline flow run on {api}: run `instructflow run` first (same PREFECT_HOME)")
    return runs[0]


def mlflow_ids(tracking_uri: str, policy: str) -> tuple[str, dict[str, str]]:
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.get_experiment_by_name("instructflow")
    if experiment is None:
        sys.exit(f"no 'instructflow' experiment in {tracking_uri}: run `instructflow run` first")
    parents = mlflow.search_runs([experiment.experiment_id], "tags.`prefect.flow_run_id` != ''",
                                 order_by=["start_time DESC"], max_results=1, output_format="list")  # fmt: skip
    parent = parents[0].info.run_id if parents else None
    children = mlflow.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'",
                                  output_format="list") if parent else []  # fmt: skip
    return experiment.experiment_id, {r.info.run_name: r.info.run_id for r in children}


@contextlib.contextmanager
def round_page(root: Path) -> Iterator[str]:
    """The ranking page, served on a loopback port, over a round's tasks from this project's policies."""
    import tempfile
    import threading

    import uvicorn

    from components.loop.label_server import create_app
    from components.loop.labeling import write_tasks
    from components.loop.samples import fresh_prompts, sample_answers
    from components.params import load_params
    from components.paths import MODELS, selected_sft

    params = load_params(root / "params.yaml")
    prompts = [p for p in fresh_prompts(root / "data", 2, 40, params.pipeline.seed) if p["category"] != "Closed QA"][:3]
    sources = [root / MODELS / "ppo", selected_sft(root)]  # what a round samples (components/loop/samples.py)
    with tempfile.TemporaryDirectory() as tmp:
        write_tasks(Path(tmp), prompts, sample_answers(sources, prompts, params, 2), 2)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(Path(tmp)), host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{port}"
        wait_for(url, None, "the ranking page")
        try:
            yield url
        finally:
            server.should_exit = True
            thread.join(timeout=10)


def shoot(page, url: str, path: Path, ready_text: str, settle: float = 3.0, charts: str | None = None) -> None:
    """Open URL, wait for READY_TEXT, and save the page to PATH; with CHARTS (a regular expression),
    MLflow's run page first shows only the metric charts whose names match it, full width."""
    page.goto(url, wait_until="load", timeout=60_000)  # not networkidle: the UIs poll forever
    try:
        page.get_by_text(ready_text, exact=False).first.wait_for(timeout=30_000)
    except Exception:  # noqa: BLE001 - say which page failed, not Playwright's internals
        page.screenshot(path=str(path.with_suffix(".failed.png")))
        sys.exit(f"{url}: the page never showed {ready_text!r}; the UI does not serve it")
    if charts is not None:
        close = page.get_by_role("button", name="Close")  # MLflow 3's assistant panel takes a third of the width
        if close.count():
            close.first.click()
        page.get_by_placeholder("Search metric charts").fill(charts)  # the box takes a regular expression
    time.sleep(settle)  # graphs and charts animate in
    page.screenshot(path=str(path))
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--mlflow-url", default=None, help="a running MLflow UI (default: start one)")
    parser.add_argument("--policy", default="instructflow-policy")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{Path.cwd() / 'mlflow.db'}")
    with contextlib.ExitStack() as stack:
        api = os.environ.get("PREFECT_API_URL")
        if not api:
            port = free_port()
            api = f"http://127.0.0.1:{port}/api"
            prefect = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
            ui_env = {**env, "PREFECT_UI_API_URL": api}  # the UI's own calls go to this port, not 4200
            stack.enter_context(server(prefect, f"{api}/health", "prefect server", ui_env))
        mlflow_url = args.mlflow_url
        if not mlflow_url:
            port = free_port()
            mlflow_url = f"http://127.0.0.1:{port}"
            command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri,
                       "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]  # fmt: skip
            stack.enter_context(server(command, f"{mlflow_url}/health", "mlflow server", env))
        flow_run = latest_pipeline_run(api)
        experiment_id, stage_runs = mlflow_ids(tracking_uri, args.policy)
        from playwright.sync_api import sync_playwright

        ui = api.removesuffix("/api")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            # The run graph is drawn on a canvas: wait for the run's name in the page, then let it draw.
            url = f"{ui}/runs/flow-run/{flow_run['id']}"
            shoot(page, url, args.out / "prefect-flow-run.png", flow_run["name"], settle=8.0)
            for stage, ready, charts in (("sft", "train/loss", "loss|lr"), ("ppo", "gold_score", "reward|kl|gold")):
                if stage not in stage_runs:
                    sys.exit(f"no {stage} stage run under the latest pipeline run in {tracking_uri}")
                url = f"{mlflow_url}/#/experiments/{experiment_id}/runs/{stage_runs[stage]}/model-metrics"
                shoot(page, url, args.out / f"mlflow-{stage}-curves.png", ready, settle=6.0, charts=charts)
            shoot(page, f"{mlflow_url}/#/models/{args.policy}", args.out / "mlflow-model.png", "candidate")
            with round_page(Path.cwd()) as url:
                shoot(page, f"{url}/?labeler=readme", args.out / "label-page.png", "tasks left")
            browser.close()


if __name__ == "__main__":
    main()
