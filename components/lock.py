"""One mutating command per project folder at a time: `instructflow run`, `round` and `stage` (what
`dvc repro` runs) hold an advisory lock on `.instructflow.lock` while they work.

fcntl.flock, not the filelock package: filelock truncates the lock file on every attempt, which
would erase the holder's name that the refused command prints. The kernel drops a flock when its
holder dies, so a crashed or killed run never leaves the folder locked.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from components.errors import StageError

LOCK = ".instructflow.lock"
# Set while a process holds a folder's lock: the commands it starts (the flow's stages and rounds)
# inherit it and work under their parent's lock instead of being refused by it.
HELD = "INSTRUCTFLOW_PROJECT_LOCK"


def holder(path: Path) -> str:
    """Who holds the lock, as its holder wrote it."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["started"]))
        return f"pid {info['pid']} on {info['host']} ({info['command']}, since {started})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (it has not written its name yet)"


@contextmanager
def project_lock(root: Path, command: str) -> Iterator[None]:
    """Hold ROOT's lock for the block; a StageError naming the holder if another process has it."""
    if os.environ.get(HELD) == str(root.resolve()):
        yield
        return
    path = root / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StageError(
                f"{root}: in use by {holder(path)}: one run at a time per project folder; wait for it, or "
                "run this in a copy of the project"
            ) from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": command, "started": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        os.environ[HELD] = str(root.resolve())
        try:
            yield
        finally:
            del os.environ[HELD]
            os.ftruncate(fd, 0)  # released: no stale name for the next reader
    finally:
        os.close(fd)  # closing drops the flock


def command_line() -> str:
    return " ".join(["instructflow", *sys.argv[1:]])
