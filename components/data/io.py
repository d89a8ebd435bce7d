"""JSON Lines in and out: errors that name the file and line, writes that are atomic."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from components.errors import DataError

_BLANK = object()


def _guess_id(raw: bytes) -> str | None:
    """The id of a line that does not parse, when it can still be seen: it helps find the record."""
    found = re.search(r'"id"\s*:\s*"([^"\\]*)"', raw.decode("utf-8", errors="replace"))
    return found.group(1) if found else None


def parse_line(path: Path | str, number: int, raw: bytes) -> Any:
    """One JSON Lines line: the parsed value, _BLANK for a blank line, DataError if unreadable."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(path, number, f"not valid UTF-8 ({e.reason} at byte {e.start})", _guess_id(raw)) from None
    if not text.strip():
        return _BLANK
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(path, number, f"not valid JSON ({e.msg}, column {e.colno})", _guess_id(raw)) from None


def iter_jsonl_lenient(path: Path | str) -> Iterator[tuple[int, Any | DataError]]:
    """(line, value) for every non-blank line, with the DataError in place of an unreadable line.

    A validation report must name every bad line and still check the rest of the file.
    """
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                value = parse_line(path, number, raw)
            except DataError as e:
                yield number, e
                continue
            if value is not _BLANK:
                yield number, value


def iter_jsonl(path: Path | str) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed value) for every non-blank line; raise DataError on a bad line."""
    for number, value in iter_jsonl_lenient(path):
        if isinstance(value, DataError):
            raise value
        yield number, value


def read_jsonl(path: Path | str) -> list[dict]:
    """All records of a JSON Lines file; every line must hold a JSON object."""
    records = []
    for number, value in iter_jsonl(path):
        if not isinstance(value, dict):
            raise DataError(path, number, f"expected a JSON object, got {type(value).__name__}")
        records.append(value)
    return records


def dumps(record: Any) -> str:
    """The one serialisation used for every output, so equal data gives equal bytes."""
    return json.dumps(record, ensure_ascii=False, separators=(", ", ": "))


@contextmanager
def atomic_path(final: Path | str) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto `final` only if the block succeeds.

    Works for files and directories, so a crash never leaves a half-written output where
    the next stage looks.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent)) / final.name
    try:
        yield tmp
        if final.is_dir() and not final.is_symlink():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def write_jsonl(path: Path | str, records: Iterable[Any]) -> int:
    """Write records atomically, one per line; return how many were written."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for record in records:
            f.write(dumps(record) + "\n")
            n += 1
    return n


def strict(value: Any) -> Any:
    """VALUE with every NaN or infinite float as None: JSON has no such numbers (strict readers refuse them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict(v) for v in value]
    return value


def write_json(path: Path | str, value: Any) -> None:
    """Write one JSON document atomically, pretty-printed with sorted keys, in strict JSON."""
    text = json.dumps(strict(value), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
