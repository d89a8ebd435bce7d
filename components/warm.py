"""Warm starts: a process that has imported the stack forks a child per command.

A fresh interpreter spends seconds importing torch, transformers, accelerate, MLflow and Great
Expectations before a stage does anything, and a pipeline runs a dozen stages. A process that
imported them once forks a child per command instead: the child is still a process of its own
(own memory, own exit code) and starts in milliseconds. Two servers fork these children: the
flow's helper (flows/warm.py) and the stage daemon that `dvc repro` and workers reach
(components/daemon.py). Nothing here runs torch before a fork: no thread pool exists yet to be
lost in the child.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PRELOAD = ("torch", "transformers", "accelerate", "mlflow", "great_expectations")  # and every module of components
SOURCES = Path(__file__).resolve().parent
# Set in every forked child: its `instructflow stage` runs there and then, it never asks a daemon.
CHILD = "INSTRUCTFLOW_WARM_CHILD"
# Read by a library at its import or set by whoever starts a command, so not what a server's imports
# depend on: the MLflow parent run, Prefect's (never imported), DVC's and the shell's per-command ones.
PER_COMMAND = ("INSTRUCTFLOW_PARENT_RUN_ID", "PWD", "OLDPWD", "SHLVL", "_")
PER_COMMAND_PREFIXES = ("PREFECT_", "DVC_")


def available() -> bool:
    return hasattr(os, "fork") and sys.platform != "darwin"  # macOS: fork after importing its frameworks is unsafe


def preload() -> None:
    """Import the stack and every module of components, as a stage would."""
    import importlib
    import pkgutil

    for name in PRELOAD:
        importlib.import_module(name)
    for module in pkgutil.walk_packages([str(SOURCES)], "components."):
        importlib.import_module(module.name)


def import_env(env: dict[str, str]) -> dict[str, str]:
    """What of ENV a server's imports may have read: a server serves only commands with the same."""
    return {
        k: v for k, v in env.items() if k not in PER_COMMAND and not k.startswith(PER_COMMAND_PREFIXES) and k != CHILD
    }


def sources_mtime() -> float:
    """The newest source file of components/: a server's imports are stale once it changes."""
    return max((p.stat().st_mtime for p in SOURCES.rglob("*.py")), default=0.0)


def child(request: dict) -> None:
    """In a forked child: run `components.cli ARGS` in CWD with ENV (the request's), then exit with its status."""
    code = 1
    try:
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ[CHILD] = "1"
        sys.argv = ["components.cli", *request["args"]]
        import runpy

        runpy.run_module("components.cli", run_name="__main__", alter_sys=True)  # as `python -m components.cli`
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # the stage's own traceback, as a fresh interpreter would print it
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
