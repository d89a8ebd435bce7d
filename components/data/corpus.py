"""Pretraining text in: plain text files or folders, or JSON Lines with a text field, into corpus.jsonl.

The corpus feeds the tiny base model's pretraining, SFT's corpus blocks and PPO's ptx term, and
its held-out part measures the alignment tax (perplexity). A document is a run of whole
paragraphs (blank-line separated) of at most `max_chars` characters, the validation limit on a
corpus text; a paragraph longer than that is cut at the last space before the limit. Ids are
`text-{digest of the sources}-{n:06d}`: the same sources give the same bytes, and appending
other sources never reuses an id.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from components.data.importers import iter_rows
from components.data.io import read_jsonl, write_jsonl
from components.errors import DataError
from components.hashing import files_digest

TEXT_SUFFIXES = (".txt", ".md", ".text")
JSON_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")


def text_files(src: Path) -> list[Path]:
    """SRC itself, or every text file below the folder SRC in name order."""
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise DataError(src, None, "no such file or folder")
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.name.lower().endswith(TEXT_SUFFIXES))
    if not files:
        raise DataError(src, None, f"no text files ({', '.join(TEXT_SUFFIXES)}) in this folder")
    return files


def is_json(path: Path) -> bool:
    return path.name.lower().endswith(JSON_SUFFIXES)


def cut(paragraph: str, max_chars: int) -> Iterator[str]:
    """A paragraph in pieces of at most max_chars, each ending at a space where there is one."""
    while len(paragraph) > max_chars:
        end = paragraph.rfind(" ", 0, max_chars + 1)
        end = end if end > 0 else max_chars
        yield paragraph[:end].strip()
        paragraph = paragraph[end:].strip()
    if paragraph:
        yield paragraph


def documents(text: str, max_chars: int) -> Iterator[str]:
    """Whole paragraphs joined into documents of at most max_chars characters."""
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    current = ""
    for piece in (c for p in paragraphs if p for c in cut(p, max_chars)):
        if current and len(current) + 2 + len(piece) > max_chars:
            yield current
            current = ""
        current = f"{current}\n\n{piece}" if current else piece
    if current:
        yield current


def source_texts(path: Path, text_field: str) -> Iterator[str]:
    """The texts of one source file: the whole file, or each JSON row's TEXT_FIELD."""
    if not is_json(path):
        try:
            yield path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise DataError(path, None, f"not valid UTF-8 ({e.reason} at byte {e.start})") from None
        return
    for loc, row in iter_rows(path):
        value = row.get(text_field)
        if not isinstance(value, str):
            raise loc.error(f"field '{text_field}' must be a string, got {type(value).__name__}")
        yield value


def run_import_corpus(
    src: Path, out: Path, max_chars: int, text_field: str = "text", append: bool = False
) -> dict[str, Any]:
    """Write SRC's text as corpus records {id, text} to OUT (atomically); return the counts."""
    src, out = Path(src), Path(out)
    files = text_files(src)
    tag = files_digest((str(f.relative_to(src)) if src.is_dir() else f.name, f) for f in files)[:8]
    texts = [doc for f in files for text in source_texts(f, text_field) for doc in documents(text, max_chars)]
    if not texts:
        raise DataError(src, None, f"no text to write ({len(files)} file(s), all empty); {out} was left as it was")
    existing = read_jsonl(out) if append and out.exists() else []
    records = [{"id": f"text-{tag}-{n:06d}", "text": t} for n, t in enumerate(texts, start=1)]
    clashes = {r.get("id") for r in existing} & {r["id"] for r in records}
    if clashes:
        raise DataError(
            out, None, f"these sources are already in this file (e.g. id {min(clashes)}); nothing was written"
        )
    write_jsonl(out, existing + records)
    return {
        "format": "text",
        "kind": "corpus",
        "src": str(src),
        "out": str(out),
        "files": len(files),
        "written": len(records),
        "chars": sum(map(len, texts)),
        "existing": len(existing),
        "total": len(existing) + len(records),
    }
