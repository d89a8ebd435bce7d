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
    good = {"held_out_accuracy": 0.7}
    table = {"gold": {}, "judge_rm": good, "training_rm": good}
    assert chosen(table, "auto", False, 0.55)[0] == "gold"
    assert chosen({"judge_rm": good, "training_rm": good}, "auto", False, 0.55)[0] == "judge_rm"
    assert chosen({"training_rm": good}, "auto", False, 0.55) == (None, "no independent judge")
    judge, why = chosen({"training_rm": good}, "auto", True, 0.55)
    assert judge == "training_rm" and "opted in" in why
    assert chosen(table, "llm", False, 0.55)[0] is None
    assert chosen(table, "training_rm", False, 0.55)[0] is None


def test_a_reward_model_judge_at_chance_is_no_evidence() -> None:
    judge, why = chosen({"judge_rm": {"held_out_accuracy": 0.512}, "training_rm": {}}, "auto", False, 0.55)
    assert judge is None
    assert why == "no independent judge; judge-RM's held-out accuracy 0.512 is below promotion.min_judge_accuracy 0.55"
    assert chosen({"judge_rm": {"held_out_accuracy": None}}, "judge_rm", False, 0.55)[0] is None
    assert chosen({"llm": {}, "judge_rm": {"held_out_accuracy": 0.51}}, "auto", False, 0.55)[0] == "llm"


def test_an_llm_judge_that_mostly_names_no_verdict_is_no_evidence() -> None:
    table = {"llm": {"replies": 2604, "unparsed_replies": 2318}, "judge_rm": {"held_out_accuracy": 0.7}}
    judge, _ = chosen(table, "auto", False, 0.55, 0.5)
    assert judge == "judge_rm"  # the next judge down decides
    judge, why = chosen(table, "llm", False, 0.55, 0.5)
    assert judge is None and why == (
        "LLM-judge named no verdict in 2318 of its 2604 replies (more than promotion.max_judge_unparsed 0.5)"
    )
    assert chosen({"llm": {"replies": 10, "unparsed_replies": 2}}, "auto", False, 0.55, 0.5)[0] == "llm"
