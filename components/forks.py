"""Work split across processes forked from this one: the models already loaded, nothing imported again.

A stage that answers or scores prompts runs one torch thread, and one thread on a small model is
faster than two (their kernels are too small to share), so the second core of a CPU machine
idles. A forked child starts in milliseconds, where a fresh interpreter spends seconds importing
torch and transformers and loading the models again, and it shares the parent's memory until it
writes. Each child maps FN over its share of the items and sends the results back as JSON
through a pipe (answers and scores are plain values, and JSON rebuilds no objects). Only on a
CPU and outside a distributed run: CUDA does not survive a fork, and a DDP rank already has a
core of its own.
"""

from __future__ import annotations

import json
import os
import signal
import traceback
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch

T, R = TypeVar("T"), TypeVar("R")


class ChildFailed(RuntimeError):
    """A forked child raised, or died before it sent its results."""


def usable(processes: int, device: torch.device | str = "cpu") -> int:
    """How many processes to split over: PROCESSES on a CPU outside a distributed run, else 1."""
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    return 1 if torch.device(device).type != "cpu" or distributed or not hasattr(os, "fork") else max(processes, 1)


def map_shares(fn: Callable[[Sequence[T]], list[R]], items: Sequence[T], processes: int) -> list[R]:
    """FN(items) computed as FN over interleaved shares (items i, i + n, ...), one share per process.

    FN must give one JSON value per item, each independent of the other items of its share. This
    process computes the first share while the children compute theirs.
    """
    n = min(processes, len(items))
    if n <= 1:
        return fn(items)
    shares = [list(items[i::n]) for i in range(n)]
    # The tokenizers library warns in every child once its own threads have run; either value silences it.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads // n))  # N processes share the cores the threads had: none oversubscribes
    try:
        children = [fork(fn, share) for share in shares[1:]]
        try:
            mine = fn(shares[0])
        except BaseException:
            for pid, read in children:  # their work is lost with ours: end them rather than leave them running
                os.kill(pid, signal.SIGKILL)
                os.close(read)
                os.waitpid(pid, 0)
            raise
    finally:
        torch.set_num_threads(threads)
    results = [mine] + [collect(*child) for child in children]
    merged: list = [None] * len(items)
    for i, part in enumerate(results):
        merged[i::n] = part
    return merged


def fork(fn: Callable[[Sequence[T]], list[R]], share: list[T]) -> tuple[int, int]:
    """A child computing FN(SHARE); its pid and the pipe it writes the outcome to, as JSON."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the parent's code, never runs its exit handlers
        os.close(read)
        try:
            outcome = json.dumps(["ok", fn(share)]).encode()
        except BaseException as e:  # noqa: BLE001 - everything goes back to the parent, which raises it
            outcome = json.dumps(["error", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"]).encode()
        with os.fdopen(write, "wb") as pipe:
            pipe.write(outcome)
        os._exit(0)
    os.close(write)
    return pid, read


def collect(pid: int, read: int) -> list:
    """The child's results, read before waiting for it (a full pipe would block it forever)."""
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        raise ChildFailed(f"a forked child (pid {pid}) died before sending its results (wait status {status})")
    kind, value = json.loads(data)
    if kind == "error":
        raise ChildFailed(f"a forked child (pid {pid}) failed: {value}")
    return value
