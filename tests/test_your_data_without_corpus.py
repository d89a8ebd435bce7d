"""The new user's road of tests/test_your_data.py with no corpus: no ptx, no perplexity, the same decision.

A module of its own so that the two end-to-end runs go to different test workers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_your_data import check_the_road

pytestmark = pytest.mark.slow


def test_real_samples_without_a_corpus_end_in_a_decision_by_an_independent_judge(tmp_path: Path) -> None:
    check_the_road(tmp_path, corpus=False)
