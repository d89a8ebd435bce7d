"""The code's shape: imports run one way, from the top (CLI, stage table) down to errors and paths.

Every `import` and `from ... import` of ours is read from the source, the deferred ones inside
functions too, so a cycle cannot hide in a function body.
"""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import ROOT

# Lower layers never import higher ones; within a layer, modules may import each other without a cycle.
LAYERS = [
    [
        "components.errors",
        "components.paths",
        "components.ports",
        "components.hashing",
        "components.forks",
        "components.warm",
        "components.daemon",
        "components.lock",
        "components.tracking",
        "components.data.schema",
    ],
    ["components.params", "components.data", "components.world"],
    ["components.models"],
    ["components.eval"],
    ["components.train"],
    ["components.loop", "components.registry"],
    ["components.stages"],
    ["flows", "components.cli"],
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def our_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        found |= {n for n in names if n.split(".")[0] in ("components", "flows")}
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for d in ("components", "flows") for p in (ROOT / d).rglob("*.py")}
    return {
        m: {i for i in our_imports(p) if i in files and i != m and not m.startswith(f"{i}.")} for m, p in files.items()
    }


def layer(module: str) -> int:
    matches = [
        (len(prefix), n)
        for n, group in enumerate(LAYERS)
        for prefix in group
        if module == prefix or module.startswith(f"{prefix}.")
    ]
    assert matches, f"{module} is in no layer of tests/test_layout.py"
    return max(matches)[1]


def test_imports_run_downwards_only() -> None:
    upward = [
        f"{m} ({layer(m)}) imports {i} ({layer(i)})" for m, deps in graph().items() for i in deps if layer(i) > layer(m)
    ]
    assert upward == []


def test_no_import_cycle() -> None:
    deps, done, cycles = graph(), set(), []

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycles.append(" -> ".join(path[path.index(module) :] + [module]))
            return
        if module in done:
            return
        for dep in sorted(deps[module]):
            visit(dep, [*path, module])
        done.add(module)

    for module in sorted(deps):
        visit(module, [])
    assert cycles == []
