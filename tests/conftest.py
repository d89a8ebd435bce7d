from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from components.params import Params, load_params

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "tiny.yaml"
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"

# One thread is faster than two for the small tensors in these tests (DESIGN.md section 7).
os.environ.setdefault("OMP_NUM_THREADS", "1")


def tool_env() -> dict[str, str]:
    """Environment for subprocesses: this interpreter's bin first on PATH, DVC analytics off."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    return env


@pytest.fixture(scope="session")
def tiny_params() -> Params:
    return load_params(ROOT / "params.yaml", profile=TINY)


@pytest.fixture(scope="session")
def tiny_data(tiny_params: Params, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from components.world.generate import run_generate

    out = tmp_path_factory.mktemp("tiny") / "data"
    run_generate(tiny_params, out)
    return out
