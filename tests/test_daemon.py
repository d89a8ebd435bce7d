"""The stage daemon: a command forked from a process that has imported the stack, on the caller's stdio."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from components import daemon

from .conftest import ROOT, SHARED_DATASETS, TINY, daemon_log, tool_env

pytestmark = pytest.mark.skipif(not daemon.supported(), reason="no os.fork or pidfd_open here")

# A command as `instructflow stage` sends it: through a daemon, or "in-process" when none took it.
DRIVER = """
import sys
from components import daemon
status = daemon.run_stage(sys.argv[2:], float(sys.argv[1]))
print("in-process" if status is None else f"status {status}", file=sys.stderr, flush=True)
"""
ALPACA = SHARED_DATASETS / "alpaca-5000.json"


def drive(args: list[str], cwd: Path, env: dict[str, str] | None = None, idle_s: float = 30) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(idle_s), *args], cwd=cwd, env=env or tool_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def finished(process: subprocess.Popen) -> tuple[str, str]:
    out, err = process.communicate(timeout=300)
    return out, err


def start_daemon(cwd: Path) -> None:
    """The first command in CWD finds no daemon: it starts one and runs its own command itself."""
    _, err = finished(drive(["--help"], cwd))
    assert err.strip() == "in-process", err


def until(condition, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what} after {seconds} s"
        time.sleep(0.05)


@pytest.mark.skipif(not ALPACA.exists(), reason="../shared/datasets is not beside the checkout")
def test_commands_run_in_one_daemons_children_with_their_output_and_exit_status(tmp_path: Path) -> None:
    start_daemon(tmp_path)
    out, err = finished(drive(["data", "import", "alpaca", str(ALPACA), "--out", "a.jsonl"], tmp_path))
    assert err.strip().endswith("status 0"), err
    assert "wrote a.jsonl" in out and (tmp_path / "a.jsonl").stat().st_size > 0, "it ran in the caller's folder"
    out, err = finished(drive(["data", "import", "no-such-format", str(ALPACA)], tmp_path))
    assert "no-such-format" in err and err.strip().endswith("status 1"), "the child's error and status reach the caller"
    lines = daemon_log(tmp_path)
    assert len(lines) == 5, lines  # the daemon, and a start and an end per command
    assert len({line.split()[1] for line in lines if line.startswith("daemon ")}) == 1, "one daemon served both"


def writer(fifo: Path) -> int | None:
    """A write end of FIFO, once a reader has it open (before that, there is none to have)."""
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as e:
        assert e.errno == errno.ENXIO, e
        return None


def gone(write_end: int) -> bool:
    try:
        os.write(write_end, b"a")  # no newline: a reader still waits for more
        return False
    except BlockingIOError:  # a full pipe: the reader is there, if slow
        return False
    except BrokenPipeError:
        return True


def wait_for_a_reader(fifo: Path, command: subprocess.Popen) -> int:
    deadline = time.monotonic() + 120
    while (end := writer(fifo)) is None:
        assert command.poll() is None, finished(command)
        assert time.monotonic() < deadline, "the child never opened the FIFO"
        time.sleep(0.05)
    return end


@pytest.mark.parametrize("how", ["kill", "terminate"])
def test_a_killed_or_signalled_command_takes_its_child_with_it_and_the_daemon_serves_the_next(
    tmp_path: Path, how: str
) -> None:
    """The child reads --params from a FIFO nobody finishes writing: it runs until something stops it."""
    start_daemon(tmp_path)
    fifo = tmp_path / "params.yaml"
    os.mkfifo(fifo)
    command = drive(["data", "generate", "--params", str(fifo), "--out", "data"], tmp_path)
    write_end = wait_for_a_reader(fifo, command)  # the child's open returned: it waits in read for the rest
    try:
        getattr(command, how)()
        _, err = finished(command)
        until(lambda: gone(write_end), "the child to die with its caller", seconds=30)
    finally:
        os.close(write_end)
    if how == "terminate":
        assert err.strip().endswith(f"status {-signal.SIGTERM}"), "SIGTERM reached the child, which died of it"
    os.unlink(fifo)
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    out, err = finished(drive(["data", "import", "no-such-format", "x.json"], tmp_path))
    assert err.strip().endswith("status 1") and "no-such-format" in err, err
    assert sum(line.startswith("daemon ") for line in daemon_log(tmp_path)) == 1, "the daemon outlived the dead command"


def test_a_daemon_whose_sources_changed_turns_the_request_away_and_gives_up_its_socket(tmp_path: Path) -> None:
    path = tmp_path / "d.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    ours, theirs = socket.socketpair()
    with ours, theirs, listener:
        request = json.dumps({"args": ["--help"], "cwd": str(tmp_path), "env": {}}) + "\n"
        socket.send_fds(ours, [request.encode()], [0, 1, 2])
        served = daemon.Daemon(listener, path, started=-1.0).take(theirs)  # every source is newer than -1
        assert not served and ours.recv(64) == b"stale\n"
    assert not path.exists(), "the next command starts a new daemon, never this one"


def test_where_no_daemon_can_listen_the_command_runs_the_stage_itself(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)  # a Unix socket's path has at most 107 bytes
    deep.mkdir(parents=True)
    env = {**tool_env(), "TMPDIR": str(deep)}
    _, err = finished(drive(["--help"], tmp_path, env=env))
    assert err.strip() == "in-process", err


def stage(root: Path, *options: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "components.cli", "stage", "validate", "--profile", str(TINY), *options]
    return subprocess.run(command, cwd=root, env=tool_env(), capture_output=True, text=True, timeout=300)


def test_stage_commands_after_the_first_run_in_its_daemon_unless_warm_idle_s_is_zero(
    tmp_path: Path, tiny_data: Path
) -> None:
    shutil.copytree(tiny_data, tmp_path / "data")
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    for _ in range(3):
        result = stage(tmp_path)
        assert result.returncode == 0 and '"records"' in result.stdout, result.stderr[-2000:]
    lines = daemon_log(tmp_path)
    assert sum(": instructflow stage validate " in line for line in lines) == 2, lines  # the first ran itself
    assert sum(line.endswith(" exit 0") for line in lines) == 2, lines
    cold = tmp_path / "cold"
    shutil.copytree(tmp_path / "data", cold / "data")
    shutil.copy(ROOT / "params.yaml", cold / "params.yaml")
    result = stage(cold, "--set", "orchestration.warm_idle_s=0")
    assert result.returncode == 0, result.stderr[-2000:]
    assert daemon_log(cold) == [], "warm_idle_s: 0 starts no daemon"
