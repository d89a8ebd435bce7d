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


def test_rank_all_calibrates_on_the_lists_it_ranks() -> None:
    r = random.Random(0)
    apart = [[r.random() for _ in range(6)] for _ in range(300)]  # corruptions of an ideal answer
    close = [[0.6 + 0.1 * r.random() for _ in range(6)] for _ in range(300)]  # a policy's own samples
    ranks_apart, apart_stats = labeler.rank_all(apart, 0.73, 0.0, "s")
    ranks_close, close_stats = labeler.rank_all(close, 0.73, 0.0, "s")
    assert [sorted(k) for k in ranks_close] == [list(range(1, 7))] * 300  # one rank per answer, no ties
    for measured in (apart_stats, close_stats):
        assert measured["labeler_agreement"] == pytest.approx(0.73, abs=0.02) and measured["pairs"] == 300 * 15
    assert close_stats["labeler_noise"] < apart_stats["labeler_noise"] / 5
    # The noise of the far-apart lists would leave two labelers of the close ones near a coin toss.
    assert labeler.expected_agreement(close, apart_stats["labeler_noise"]) < 0.6
    assert labeler.rank_all(close, 0.73, 0.0, "s") == (ranks_close, close_stats)  # seeded


def test_answers_too_alike_for_the_target_get_the_fallback_noise() -> None:
    garbage = [[0.0] * 5 for _ in range(50)]  # an untrained model: every answer scores 0
    ranks, measured = labeler.rank_all(garbage, 0.73, 0.01, "s", fallback=0.27)
    assert measured["labeler_noise"] == 0.27 and any(len(set(k)) > 1 for k in ranks)
    assert labeler.rank_all(garbage, 0.73, 0.01, "s")[1]["labeler_noise"] < 0.001  # no fallback: the floor
