"""A warm start for stage processes: fork a process that has already imported the stack.

Each stage runs in a process of its own, so that its memory, threads and `accelerate launch`
never leak into the flow's process. A fresh interpreter spends seconds importing torch,
transformers, accelerate and MLflow before the stage does anything, and a pipeline runs a dozen
stages. So one helper process imports them once and forks a child per stage: the child is still
a process of its own (own memory, own exit code), and starts in milliseconds.

The helper reads one JSON request per line on stdin (the command's arguments, directory and
environment), forks, and the child runs `components.cli` with them, writing to the helper's
stdout, which the flow reads; when the child exits the helper writes a sentinel line with its
exit status. Requests run one at a time. Nothing here runs torch before a fork (no thread pool
exists yet to be lost in the child). Where os.fork does not exist, or with
`orchestration.warm_start: false`, stages start in fresh interpreters.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

SENTINEL = "\x00instructflow-stage-exit "
PRELOAD = ("torch", "transformers", "accelerate", "mlflow", "great_expectations")  # and every module of components
SOURCES = Path(__file__).resolve().parents[1] / "components"


def serve() -> None:
    """The helper's loop: import the stack, then fork one child per request."""
    import importlib
    import pkgutil

    for name in PRELOAD:
        importlib.import_module(name)
    for module in pkgutil.walk_packages([str(SOURCES)], "components."):
        importlib.import_module(module.name)
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            child(request)  # never returns
        _, status = os.waitpid(pid, 0)
        sys.stdout.write(f"\n{SENTINEL}{os.waitstatus_to_exitcode(status)}\n")
        sys.stdout.flush()


def child(request: dict) -> None:
    code = 1
    try:
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["components.cli", *request["args"]]
        import runpy

        runpy.run_module("components.cli", run_name="__main__", alter_sys=True)  # as `python -m components.cli`
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # the stage's own traceback, as a fresh interpreter would print it
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def import_env(env: dict[str, str]) -> dict[str, str]:
    """What of ENV the helper's imports may read: not the per-stage MLflow parent, not Prefect's (never imported)."""
    return {k: v for k, v in env.items() if k != "INSTRUCTFLOW_PARENT_RUN_ID" and not k.startswith("PREFECT_")}


def sources_mtime() -> float:
    """The newest source file of components/: the helper's imports are stale once it changes."""
    return max((p.stat().st_mtime for p in SOURCES.rglob("*.py")), default=0.0)


class Helper:
    """The flow process's helper, started on first use and restarted when components/ changes."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0
        self.env: dict[str, str] = {}
        self.lock = threading.Lock()

    def ensure(self, env: dict[str, str]) -> subprocess.Popen:
        """The running helper, or a new one when there is none, the sources changed or so did the environment
        (some libraries read it at import)."""
        newest, env = sources_mtime(), import_env(env)
        if self.process is None or self.process.poll() is not None or newest > self.started_at or env != self.env:
            self.close()
            self.started_at, self.env = newest, env
            self.process = subprocess.Popen(
                [sys.executable, "-m", "flows.warm"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,  # stdout is read from its descriptor (flows/stage.py's forward)
                env=env,
            )
        return self.process

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def prewarm(self, env: dict[str, str]) -> None:
        """Start the helper now: it imports while the flow does other work (its first stage no longer waits)."""
        with self.lock:
            self.ensure(env)

    def run(self, args: list[str], root: Path, env: dict[str, str], forward) -> int:
        """Run `components.cli ARGS` in a forked child; FORWARD gets the output; returns the exit status."""
        with self.lock:
            process = self.ensure(env)
            process.stdin.write(json.dumps({"args": args, "cwd": str(root), "env": env}) + "\n")
            process.stdin.flush()
            status = forward(process.stdout, SENTINEL)
            if status is None:  # the helper itself died
                self.close()
                return 1
            return status

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.stdin.close()  # an idle helper ends at the end of its input
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:  # still importing: it holds nothing worth waiting for
                self.process.kill()
                self.process.wait()
        self.process = None


HELPER = Helper()
atexit.register(HELPER.close)


def available() -> bool:
    return hasattr(os, "fork") and sys.platform != "darwin"  # macOS: fork after importing its frameworks is unsafe


if __name__ == "__main__":
    serve()
