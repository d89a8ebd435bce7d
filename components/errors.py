"""The errors a user acts on. The CLI turns each into one clear message and exit code, no traceback.

This module imports nothing of ours, so every layer can raise them.
"""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """A problem with an input file, located by file, line (1-based) and record id."""

    def __init__(self, path: Path | str, line: int | None, problem: str, record_id: str | None = None):
        self.path, self.line, self.problem, self.record_id = str(path), line, problem, record_id
        where = self.path + (f": line {line}" if line else "") + (f", id {record_id}" if record_id else "")
        super().__init__(f"{where}: {problem}")


class ParamsError(ValueError):
    """params.yaml (or a profile or an override) does not describe valid params."""


class StageError(RuntimeError):
    """A stage refused to run or failed in a way the user must act on (exit code 1)."""
