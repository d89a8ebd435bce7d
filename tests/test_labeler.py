"""The simulated labeler: ranks, ties, calibrated noise and measured agreement."""

from __future__ import annotations

import random

import pytest

from components.world import labeler


def test_ranks_are_dense_with_ties_within_the_margin() -> None:
    assert labeler.ranks_from_utilities([0.9, 0.1, 0.5], 0.01) == [1, 3, 2]
    assert labeler.ranks_from_utilities([0.9, 0.895, 0.5, 0.5], 0.01) == [1, 1, 2, 2]


@pytest.mark.parametrize("margin", [0.0, 0.01, 0.2])
def test_array_ranks_are_the_ranks_of_each_row(margin: float) -> None:
    import numpy as np

    r = random.Random(0)
    for k in (2, 5, 9):
        rows = [[round(r.random(), 1) for _ in range(k)] for _ in range(200)]  # rounded: exact ties too
        expected = [labeler.ranks_from_utilities(row, margin) for row in rows]
        assert labeler.dense_ranks(np.array(rows), margin).tolist() == expected


def test_a_list_tied_entirely_is_ordered_only_when_asked() -> None:
    golds = [0.8, 0.7, 0.7, 0.79]  # a world comparison the margin once tied entirely, at a tiny noise
    tied = labeler.noisy_ranks(golds, 1e-6, 0.2, random.Random(0))
    ordered = labeler.noisy_ranks(golds, 1e-6, 0.2, random.Random(0), order_ties=True)
    assert tied == [1, 1, 1, 1]
    assert ordered[0] == 1 and ordered[3] == 2 and ordered[1] > 2 and ordered[2] > 2
    assert labeler.noisy_ranks([0.9, 0.1], 1e-6, 0.01, random.Random(0), order_ties=True) == [1, 2]  # untouched


def test_pair_agreement_counts_ties_only_against_ties() -> None:
    assert labeler.pair_agreement([1, 2, 3], [1, 2, 3]) == (3, 3)
    assert labeler.pair_agreement([1, 2, 3], [3, 2, 1]) == (0, 3)
    assert labeler.pair_agreement([1, 1, 2], [1, 2, 3]) == (2, 3)


def agreement(golds: list[list[float]], sigma: float, margin: float, seed: str) -> float:
    return labeler.LabelerPair(golds, margin, seed).agreement(sigma)[0]


@pytest.mark.parametrize("margin", [0.0, 0.01])
@pytest.mark.parametrize("target", [0.65, 0.73, 0.85])
def test_calibrated_noise_reaches_the_target_agreement(target: float, margin: float) -> None:
    r = random.Random(0)
    golds = [[r.random() for _ in range(r.randint(4, 9))] for _ in range(400)]
    sigma = labeler.calibrate_noise(golds, target, margin, "s")
    assert agreement(golds, sigma, margin, "calibrate-s") == pytest.approx(target, abs=2e-3)
    a, b = random.Random(1), random.Random(2)  # two labelers the calibration never saw
    agree = total = 0
    for g in golds:
        x, n = labeler.pair_agreement(
            labeler.noisy_ranks(g, sigma, margin, a), labeler.noisy_ranks(g, sigma, margin, b)
        )
        agree, total = agree + x, total + n
    assert agree / total == pytest.approx(target, abs=0.02)


def test_more_noise_means_less_agreement() -> None:
    golds = [[0.1, 0.5, 0.9, 0.3]] * 50
    assert (
        1.0 == agreement(golds, 1e-4, 0.01, "s") > agreement(golds, 0.05, 0.01, "s") > agreement(golds, 0.5, 0.01, "s")
    )


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
    assert agreement(close, apart_stats["labeler_noise"], 0.0, "s") < 0.6
    assert labeler.rank_all(close, 0.73, 0.0, "s") == (ranks_close, close_stats)  # seeded


def test_ties_count_as_agreement_in_the_calibration_as_in_the_measurement() -> None:
    """A policy's samples: half the pairs share a gold score, and two labelers may tie them alike.

    Before the calibration counted ties as the measurement does, such lists got almost no noise
    and two labelers agreed on 0.77-1.0 of pairs.
    """
    r = random.Random(0)
    samples = [[r.choice([0.75] * 5 + [0.5, 1.0]) for _ in range(r.randint(4, 9))] for _ in range(300)]
    garbage = [[0.0] * 5 for _ in range(400)]  # an untrained model: every answer scores 0
    for golds in (samples, garbage):
        for margin in (0.01, 0.05):
            ranks, measured = labeler.rank_all(golds, 0.73, margin, "s")
            assert measured["labeler_agreement"] == pytest.approx(0.73, abs=0.02), margin
            assert measured["labeler_noise"] > 0.001
            assert any(len(set(k)) > 1 for k in ranks) and any(len(set(k)) < len(k) for k in ranks)


def test_answers_too_alike_for_the_target_get_the_fallback_noise() -> None:
    garbage = [[0.0] * 5 for _ in range(50)]  # without a tie margin, equal answers are coin tosses
    assert labeler.calibrate_noise(garbage, 0.73, 0.0, "s") is None
    ranks, measured = labeler.rank_all(garbage, 0.73, 0.0, "s", fallback=0.27)
    assert measured["labeler_noise"] == 0.27 and any(len(set(k)) > 1 for k in ranks)
    assert labeler.rank_all(garbage, 0.73, 0.0, "s")[1]["labeler_noise"] == labeler.NOISE_FLOOR  # no fallback
