"""The stage daemon: `instructflow stage` forked from a process that has imported the stack.

`dvc repro` and a Prefect worker start one `instructflow stage NAME` per stage, each a fresh
interpreter that spends seconds importing torch and the rest before it works. So the first stage
command in a folder starts a daemon that imports them (components/warm.py) while the command runs
its own stage as before; each later command sends the daemon its arguments, folder, environment
and its own stdin, stdout and stderr (passed over a Unix socket), and the daemon forks a child
that runs the stage on the caller's terminal or pipe; the command exits with the child's status.
Signals the command gets (Ctrl-C) go to the child, and a command killed outright takes its child
with it. A daemon serves one folder, one environment and one version of the sources, each request
in a process of its own, and exits after `orchestration.warm_idle_s` seconds without a stage.
Where none can be reached, the command runs the stage itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from components import warm

DAEMON_MAIN = "import sys; from components.daemon import main; main(sys.argv[1:])"
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SOCKET_PATH_MAX = 107  # bytes of a Unix socket's path (sun_path less its NUL)
START_SECONDS = 10.0  # binding the socket comes before the imports: this only bounds a daemon that hangs


def folder() -> Path:
    """This user's sockets (a short path: a Unix socket's name has at most 107 bytes)."""
    path = Path(tempfile.gettempdir()) / f"instructflow-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def address(cwd: str, env: dict[str, str]) -> Path:
    """The socket of the daemon for this interpreter, these sources, this folder and these imports."""
    key = json.dumps([sys.executable, str(warm.SOURCES), cwd, sorted(warm.import_env(env).items())])
    return folder() / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.sock"


# --- the daemon -------------------------------------------------------------------------------


class Daemon:
    """One listening socket and the imports of one version of the sources. Each request gets a
    process of its own (a fork) that runs the stage and watches its caller, so stages of several
    commands run side by side and the loop only accepts."""

    def __init__(self, listener: socket.socket, path: Path, started: float) -> None:
        self.listener, self.path, self.started = listener, path, started
        self.inode = path.stat().st_ino
        self.running: set[int] = set()

    def serve(self, idle_s: float) -> None:
        """Take requests until no stage has run for IDLE_S (up to twice that) or the sources change."""
        self.listener.settimeout(idle_s)
        try:
            while True:
                try:
                    conn, _ = self.listener.accept()
                except TimeoutError:
                    self.reap()
                    if not self.running:
                        return
                    continue
                with conn:
                    self.reap()
                    if not self.take(conn):
                        return
        finally:
            self.retire()

    def take(self, conn: socket.socket) -> bool:
        """Hand CONN to a process of its own; False when this daemon's imports are stale and it must go."""
        if warm.sources_mtime() > self.started:
            self.retire()  # before the answer: the command's next try must find no socket here
            with contextlib.suppress(OSError):
                conn.sendall(b"stale\n")
            return False
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                self.listener.close()
                conn.settimeout(None)
                handle(conn)
                code = 0
            except (OSError, ValueError) as e:  # one command's broken request: the daemon goes on
                log(f"dropped a request: {e}")
            finally:
                os._exit(code)  # never the daemon's loop in a fork
        self.running.add(pid)
        return True

    def reap(self) -> None:
        for pid in list(self.running):
            if os.waitpid(pid, os.WNOHANG)[0]:
                self.running.discard(pid)

    def retire(self) -> None:
        """Stop listening and remove the socket (unless a newer daemon's is there now)."""
        with contextlib.suppress(OSError):
            if self.path.stat().st_ino == self.inode:
                self.path.unlink()
        self.listener.close()


def handle(conn: socket.socket) -> None:
    """In a request's own process: fork the stage's child on the caller's stdio, watch it, report its status."""
    request, fds = receive(conn)
    pid = os.fork()
    if pid == 0:
        try:
            conn.close()
            become(fds)
            warm.child(request)  # never returns
        finally:
            os._exit(1)
    close_all(fds)  # the caller's pipes must close when the child's end does
    with contextlib.suppress(OSError):
        os.setpgid(pid, pid)  # as the child does: whichever runs first
    log(f"child {pid}: instructflow {' '.join(request['args'])}")
    conn.sendall(f"started {pid}\n".encode())
    code = supervise(conn, pid)
    log(f"child {pid} exit {code}")
    with contextlib.suppress(OSError):
        conn.sendall(f"exit {code}\n".encode())


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)  # the daemon's stderr: the .log beside its socket


def receive(conn: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
    while not data.endswith(b"\n"):
        more = conn.recv(1 << 16)
        if not more:
            raise ConnectionError("the command went away before its request was whole")
        data += more
    return json.loads(data), fds


def become(fds: list[int]) -> None:
    """In the child: its own process group (a kill reaches its `accelerate launch` too) on the caller's stdio."""
    os.setpgid(0, 0)
    for signum in FORWARDED:
        signal.signal(signum, signal.SIG_DFL)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    close_all([fd for fd in fds if fd > 2])
    sys.stdout.reconfigure(line_buffering=True)  # the daemon's own stdout was a file
    sys.stderr.reconfigure(line_buffering=True)


def supervise(conn: socket.socket, pid: int) -> int:
    """Pass the caller's signals to the child; kill it when the caller dies; return its exit status."""
    child = os.pidfd_open(pid)
    pending = b""
    try:
        while True:
            ready, _, _ = select.select([conn, child], [], [])
            if child in ready:
                break
            data = conn.recv(1024)
            if not data:  # the caller was killed: nobody waits for this stage any more
                signal_group(pid, signal.SIGKILL)
                break
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                signal_group(pid, int(line.split()[1]))
    finally:
        os.close(child)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        try:
            os.killpg(pid, signum)
        except ProcessLookupError:  # not yet its own group
            os.kill(pid, signum)


def close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


# --- the command's side -----------------------------------------------------------------------


def wanted(enabled: bool) -> bool:
    """Whether this stage command should go to a daemon: ENABLED (orchestration.warm_start), where
    fork exists, not already in a forked child, and on its own stdio (a test's runner captures it in
    Python objects, which a daemon's child cannot write to)."""
    return enabled and supported() and not os.environ.get(warm.CHILD) and on_own_stdio()


def supported() -> bool:
    return warm.available() and hasattr(os, "pidfd_open")  # Linux 5.3 and later


def on_own_stdio() -> bool:
    try:
        return (sys.stdin.fileno(), sys.stdout.fileno(), sys.stderr.fileno()) == (0, 1, 2)
    except (AttributeError, ValueError, OSError):  # None, closed, or not a file (io.UnsupportedOperation)
        return False


def run_stage(args: list[str], idle_s: float) -> int | None:
    """Run `instructflow ARGS` in a daemon's child; its exit status (negative: the signal that
    killed it), or None when no daemon took it (nothing ran: the caller runs it)."""
    cwd, env = os.getcwd(), dict(os.environ)
    path = address(cwd, env)
    if len(os.fsencode(path)) > SOCKET_PATH_MAX:  # TMPDIR too deep for a Unix socket
        return None
    request = (json.dumps({"args": args, "cwd": cwd, "env": env}) + "\n").encode()
    for _ in range(2):  # a stale daemon goes, and a new one takes the request
        conn = connect(path, env, idle_s, cwd)
        if conn is None:
            return None
        with conn:
            status = converse(conn, request)
        if status != "stale":
            return status
    return None


def connect(path: Path, env: dict[str, str], idle_s: float, cwd: str) -> socket.socket | None:
    """A connection to the daemon at PATH; where there is none, None, and one is started for the
    commands after this one (it imports while this one runs its stage itself: no command waits for
    more imports than its own)."""
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one command starts the daemon, the others find it
        conn = attempt(path)
        if conn is not None:
            return conn
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a daemon that died without removing it
        with open(path.with_suffix(".log"), "w") as log_file:
            daemon = subprocess.Popen(
                [sys.executable, "-c", DAEMON_MAIN, str(path), str(idle_s), cwd],
                cwd=warm.SOURCES.parent,  # the same components/ as this command's
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # not in the caller's process group: a Ctrl-C is forwarded, once
            )
        deadline = time.monotonic() + START_SECONDS
        while daemon.poll() is None and not path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)  # until it listens (before its imports): the next command connects, not starts one
        return None


def attempt(path: Path) -> socket.socket | None:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
        return conn
    except OSError:  # none there yet, or one that is going
        conn.close()
        return None


def converse(conn: socket.socket, request: bytes) -> int | str | None:
    """Send the request with this process's stdio; the child's exit status, "stale", or None when
    the daemon closed before it started the stage. A signal that comes before the child exists
    is sent on too (the daemon's side passes it once the child runs), or, where no child ever ran,
    raised here again."""
    caught: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        caught.append(signum)
        with contextlib.suppress(OSError):  # the daemon is gone: the readline below says so
            conn.sendall(f"signal {signum}\n".encode())

    previous = {s: signal.signal(s, forward) for s in FORWARDED}
    stream = conn.makefile("rb")
    try:
        socket.send_fds(conn, [request], [0, 1, 2])
        first = stream.readline().decode()
        last = stream.readline().decode() if first.startswith("started ") else ""
    except OSError:
        first = last = ""
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if not first.startswith("started "):
        for signum in caught:
            os.kill(os.getpid(), signum)  # as if the signal had come to a command that runs its stage itself
        return "stale" if first.strip() == "stale" else None
    if not last.startswith("exit "):
        print("instructflow: the stage daemon died while the stage ran", file=sys.stderr)
        return 1
    return int(last.split()[1])


def main(argv: list[str]) -> None:
    """The daemon's process: bind first (commands wait on the socket, not on a sleep), then import."""
    path, idle_s, cwd = Path(argv[0]), float(argv[1]), argv[2]
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(8)
    log(f"daemon {os.getpid()} serves {cwd}")
    started = warm.sources_mtime()
    warm.preload()
    Daemon(listener, path, started).serve(idle_s)
