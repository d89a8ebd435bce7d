"""The simulated labeler: ranks, ties, calibrated noise and measured agreement."""

from __future__ import annotations

import random

import pytest

from components.world import labeler


def test_ranks_are_dense_with_ties_within_the_margin() -> None:
    assert labeler.ranks_from_utilities([0.9, 0.1, 0.5], 0.01) == [1, 3, 2]
    assert labeler.ranks_from_utilities([0.9, 0.895, 0.5, 0.5], 0.01) == [1, 1, 2, 2]


def test_pair_agreement_counts_ties_only_against_ties() -> None:
    assert labeler.pair_agreement([1, 2, 3], [1, 2, 3]) == (3, 3)
    assert labeler.pair_agreement([1, 2, 3], [3, 2, 1]) == (0, 3)
    assert labeler.pair_agreement([1, 1, 2], [1, 2, 3]) == (2, 3)


@pytest.mark.parametrize("target", [0.65, 0.73, 0.85])
def test_calibrated_noise_reaches_the_target_agreement(target: float) -> None:
    r = random.Random(0)
    golds = [[r.random() for _ in range(r.randint(4, 9))] for _ in range(400)]
    sigma = labeler.calibrate_noise(golds, target)
    assert labeler.expected_agreement(golds, sigma) == pytest.approx(target, abs=1e-3)
    a, b = random.Random(1), random.Random(2)
    agree = total = 0
    for g in golds:
        x, n = labeler.pair_agreement(labeler.noisy_ranks(g, sigma, 0.0, a), labeler.noisy_ranks(g, sigma, 0.0, b))
        agree, total = agree + x, total + n
    assert agree / total == pytest.approx(target, abs=0.02)


def test_more_noise_means_less_agreement() -> None:
    golds = [[0.1, 0.5, 0.9, 0.3]]
    assert labeler.expected_agreement(golds, 0.05) > labeler.expected_agreement(golds, 0.5) > 0.5
