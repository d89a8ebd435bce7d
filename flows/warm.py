"""The flow's warm start: one helper process per flow forks a child per stage (components/warm.py).

The helper reads one JSON request per line on stdin (the command's arguments, directory and
environment), forks, and the child runs `components.cli` with them, writing to the helper's
stdout, which the flow reads; when the child exits the helper writes a sentinel line with its
exit status. Requests run one at a time. Where os.fork does not exist, or with
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

from components.warm import available, child, import_env, preload, sources_mtime

__all__ = ["HELPER", "SENTINEL", "Helper", "available", "serve"]
SENTINEL = "\x00instructflow-stage-exit "


def serve() -> None:
    """The helper's loop: import the stack, then fork one child per request."""
    preload()
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            child(request)  # never returns
        _, status = os.waitpid(pid, 0)
        sys.stdout.write(f"\n{SENTINEL}{os.waitstatus_to_exitcode(status)}\n")
        sys.stdout.flush()


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


if __name__ == "__main__":
    serve()
