"""Win rates with intervals, agreement with gold, and which judge decides."""

from __future__ import annotations

import pytest

from components.eval.judges import agreement, chosen, interval, preferences, win_rate


def test_preferences_count_ties_half() -> None:
    assert preferences([1.0, 0.2, 0.5], [0.5, 0.9, 0.5]) == [1.0, 0.0, 0.5]


def test_the_interval_holds_the_win_rate_and_narrows_with_more_prompts() -> None:
    few = win_rate([1.0, 0.0, 1.0, 1.0, 0.5, 0.0, 1.0, 1.0] * 2)
    many = win_rate([1.0, 0.0, 1.0, 1.0, 0.5, 0.0, 1.0, 1.0] * 64)
    assert few["value"] == many["value"] == pytest.approx(0.6875)
    assert few["low"] < few["value"] < few["high"] and many["low"] < many["value"] < many["high"]
    assert many["high"] - many["low"] < (few["high"] - few["low"]) / 4  # about 1/sqrt(64) as wide
    assert few["prompts"] == 16
    assert interval([0.5] * 10) == (0.5, 0.5)  # nothing to resample
    assert interval([1.0, 0.0] * 20, seed=3) == interval([1.0, 0.0] * 20, seed=3)  # seeded


def test_agreement_counts_only_pairs_gold_tells_apart() -> None:
    judge = [1.0, 0.0, 0.5, 1.0, 0.0]
    gold = [1.0, 1.0, 0.0, 0.5, 0.0]
    differs = [True, True, True, True, False]  # the last answers are the same text
    result = agreement(judge, gold, differs)
    assert result["pairs"] == 3  # the gold tie and the same text are left out
    assert result["value"] == pytest.approx((1.0 + 0.0 + 0.5) / 3)
    assert agreement([1.0], [0.5], [True])["value"] is None


def test_promotion_takes_the_most_trusted_independent_judge_and_never_the_training_rm_unasked() -> None:
    assert chosen(["gold", "judge_rm", "training_rm"], "auto", False)[0] == "gold"
    assert chosen(["judge_rm", "training_rm"], "auto", False)[0] == "judge_rm"
    assert chosen(["training_rm"], "auto", False) == (None, "no independent judge")
    judge, why = chosen(["training_rm"], "auto", True)
    assert judge == "training_rm" and "opted in" in why
    assert chosen(["gold"], "llm", False)[0] is None
    assert chosen(["training_rm"], "training_rm", False)[0] is None
