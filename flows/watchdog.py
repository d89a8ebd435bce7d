"""The watchdog of `instructflow run`'s temporary Prefect server (flows/server.py).

Run as `python -m flows.watchdog PARENT_PID SERVER_PID`, it waits for PARENT to go, however it
ends, then stops SERVER. It imports nothing but the standard library: a parent killed while the
watchdog was still importing Prefect (seconds on a busy machine) would leave the server running
that long.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path


def still_the_server(pid: int) -> bool:
    """PID still runs uvicorn (where /proc can tell): a pid freed at a normal exit may be reused."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        return b"uvicorn" in cmdline.read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no /proc (macOS): trust the pid
    except OSError:
        return False


def watch(parent: int, server: int, poll: float = 0.5) -> None:
    """Wait until PARENT has gone (this process is handed to another parent), then end SERVER."""
    while os.getppid() == parent:
        time.sleep(poll)
    if not still_the_server(server):
        return
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 0.0)):
        try:
            os.kill(server, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.kill(server, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


if __name__ == "__main__":
    watch(int(sys.argv[1]), int(sys.argv[2]))
