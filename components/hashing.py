"""Digests that tie a result to what it was made from: data, params, models.

Two kinds, each written once: `files_digest` over named files (what DVC would see change) and
`values_digest` over values and model weights (what a checkpoint or a registered model belongs to).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def file_hash(path: Path, algorithm: str = "md5"):
    """The hashlib object of a file's bytes, read in blocks (a data file can be large)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest


def files_digest(named: Iterable[tuple[str, Path]]) -> str:
    """md5 over each (name, file): the name, then the file's md5 (b"missing" when it does not exist)."""
    digest = hashlib.md5()
    for name, path in named:
        digest.update(name.encode())
        digest.update(file_hash(path).digest() if path.exists() else b"missing")
    return digest.hexdigest()


def tree_digest(root: Path, paths: Iterable[str]) -> str:
    """files_digest over every file under PATHS (files or folders, relative to ROOT), named by relative path."""
    named = []
    for rel in sorted(paths):
        path = root / rel
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        named += [(str(f.relative_to(root)), f) for f in files]
    return files_digest(named)


def values_digest(*parts: Any) -> str:
    """sha256 over values (as sorted JSON) and, for a Path, the file's or folder's safetensors bytes.

    A checkpoint made from other params, other data or another initial model is never resumed.
    """
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            for file in sorted(part.glob("*.safetensors")) if part.is_dir() else [part]:
                digest.update(file.read_bytes())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()
