"""The warm start of stage processes: forked children of a helper that has imported the stack."""

from __future__ import annotations

import io
import os

import pytest

from flows import warm
from flows.stage import forward, subprocess_env

from .conftest import ROOT

pytestmark = pytest.mark.skipif(not warm.available(), reason="no os.fork here")


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, line: str, *args) -> None:
        self.lines.append(line % args if args else line)


def run(helper: warm.Helper, args: list[str]) -> tuple[int, list[str]]:
    logger = Lines()
    status = helper.run(args, ROOT, subprocess_env(), lambda stream, sentinel: forward(stream, logger, sentinel))
    return status, logger.lines


@pytest.fixture(scope="module")
def helper():
    """One helper for the module: each start imports the whole stack (seconds)."""
    helper = warm.Helper()
    yield helper
    helper.close()


def test_a_forked_command_reports_its_output_and_exit_status_and_the_helper_serves_the_next(helper) -> None:
    status, lines = run(helper, ["stage", "--help"])
    assert status == 0 and any("stage" in line for line in lines)
    first = helper.process.pid
    status, lines = run(helper, ["stage", "no-such-stage"])
    assert status != 0
    assert any("no-such-stage" in line for line in lines), "the child's error reaches the log"
    assert helper.process.pid == first, "one helper serves every stage"


def test_a_dead_helper_is_a_failed_stage_and_a_new_helper_next_time(helper) -> None:
    run(helper, ["stage", "--help"])
    helper.process.kill()
    helper.process.wait()
    status, _ = run(helper, ["stage", "--help"])
    assert status == 0, "a helper that died is replaced before the next request"


def test_the_helper_restarts_when_the_sources_change(helper, monkeypatch) -> None:
    run(helper, ["stage", "--help"])
    first = helper.process.pid
    monkeypatch.setattr(warm, "sources_mtime", lambda: helper.started_at + 1)
    run(helper, ["stage", "--help"])
    assert helper.process.pid != first, "stale imports are never forked"


def test_a_stage_forks_warm_only_where_the_run_started_a_helper(helper, monkeypatch) -> None:
    from flows import stage

    monkeypatch.setattr(warm, "HELPER", warm.Helper())
    assert not stage.forks_warm(True), "a deployment's single stage on a worker starts fresh"
    monkeypatch.setattr(warm, "HELPER", helper)
    helper.prewarm(subprocess_env())
    assert stage.forks_warm(True) and not stage.forks_warm(False)


def test_forward_stops_at_the_sentinel_with_the_status() -> None:
    read, write = os.pipe()
    os.write(write, f"one\rtwo\n{warm.SENTINEL}3\n".encode())
    logger = Lines()
    assert forward(io.FileIO(read), logger, warm.SENTINEL) == 3
    assert logger.lines == ["one", "two"]
    os.close(write)
