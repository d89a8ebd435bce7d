"""The new user's road of tests/test_your_data.py with no corpus: no ptx, no perplexity, the same decision.

The stages of the flow's table run here, in this process, one after another (the flow and its
subprocesses are tests/test_your_data.py's): a module of its own, so the two roads go to
different test workers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from components.params import load_params
from components.stages import STAGES

from .conftest import TINY
from .test_your_data import check_the_decision, user_project

pytestmark = pytest.mark.slow


def test_real_samples_without_a_corpus_end_in_a_decision_by_an_independent_judge(tmp_path: Path) -> None:
    project = user_project(tmp_path / "project", corpus=False)
    params = load_params(project / "params.yaml", profile=TINY)
    for stage in STAGES.values():  # the flow's order
        stage.run(params, project)
    check_the_decision(project, corpus=False)
