"""The temporary Prefect server of `instructflow run`, which ends with its parent however it ends.

With no PREFECT_API_URL, Prefect starts a temporary server (uvicorn in a subprocess) and stops it
at exit; a parent killed with SIGKILL never reaches its exit, and the server stays, listening on
loopback. So the run starts that same server itself and sets a watchdog beside it: a small process
that waits for the parent to go and then stops the server (flows/watchdog.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from prefect.server.api.server import SubprocessASGIServer

STARTUP_SECONDS = 180  # the least time the temporary server gets to answer its health check


class WatchedServer(SubprocessASGIServer):
    """Prefect's temporary server, with a watchdog started the moment its process is."""

    watchdog: subprocess.Popen | None = None

    def _run_uvicorn_command(self) -> subprocess.Popen:
        # Prefect's own hook for starting the process (it calls it again on a port clash).
        process = super()._run_uvicorn_command()
        self.stop_watchdog()
        command = [sys.executable, "-m", "flows.watchdog", str(os.getpid()), str(process.pid)]
        # Its own session: a Ctrl-C to the run's terminal reaches the run, not the watchdog.
        self.watchdog = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
        return process

    def stop_watchdog(self) -> None:
        if self.watchdog is not None:
            self.watchdog.terminate()
            self.watchdog.wait()
            self.watchdog = None


@contextmanager
def prefect_api() -> Iterator[None]:
    """PREFECT_API_URL's server when it is set; else a temporary one on loopback for the block."""
    if os.environ.get("PREFECT_API_URL"):
        yield
        return
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, temporary_settings

    server = WatchedServer()
    try:
        # Prefect waits 20 s by default, and a fresh PREFECT_HOME (a new machine's first run) spends
        # about that migrating its database before it answers: on a busy machine, longer.
        server.start(timeout=max(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value(), STARTUP_SECONDS))
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield
    finally:
        drain_to(server)
        server.stop_watchdog()  # first: the server's pid must not be reused before the watchdog goes
        server.stop()


def drain_to(server: WatchedServer) -> None:
    """Send the logs and events still queued while the server listens: at exit, Prefect's workers
    would retry a stopped server for a minute and more."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    if server.running:
        for worker in (APILogWorker, EventsWorker):
            worker.drain_all(timeout=10)
