"""A free TCP port on loopback: for accelerate's rendezvous, the ranking page and the test servers."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port the OS has just handed out on 127.0.0.1 (bound once, then released for the caller)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
