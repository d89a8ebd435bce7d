"""Judges of one answer against another, their win rates with intervals, and how far to trust them.

A judge gives, per prompt, the preference for model A's answer over model B's: 1 (A better),
0.5 (tie) or 0 (B better); the LLM judge, asked in both orders, also gives 0.25 and 0.75.
A win rate is the mean preference, with a 95% percentile bootstrap interval over prompts.

Judges, most trusted first:
- gold: the embedded world's grader (the truth, where it exists);
- people: blinded A/B labels from `instructflow label serve --evaluate`;
- llm: a local LLM asked which answer is better (`evaluate.judge_model`);
- judge_rm: a reward model trained on the judge split's users, from the base model;
- training_rm: the reward model PPO optimised. Its win rate is what PPO maximised, so it is
  evidence only of that; it promotes only when params opt in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

INDEPENDENT = ("gold", "people", "llm", "judge_rm")
JUDGES = (*INDEPENDENT, "training_rm")
LABELS = {
    "gold": "gold",
    "people": "people",
    "llm": "LLM-judge",
    "judge_rm": "judge-RM",
    "training_rm": "training-RM",
}
LEVEL = 0.95
RESAMPLES = 2000


def preferences(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """Per prompt, 1 where a's score beats b's, 0.5 on a tie, 0 where it loses."""
    return [1.0 if x > y else 0.5 if x == y else 0.0 for x, y in zip(a, b, strict=True)]


def interval(values: Sequence[float], seed: int = 0) -> tuple[float, float]:
    """The 95% percentile bootstrap interval of the mean over prompts."""
    data = np.asarray(values, dtype=float)
    if len(data) < 2 or np.all(data == data[0]):  # no spread to resample (scipy warns and returns NaN)
        value = float(data.mean()) if len(data) else float("nan")
        return value, value
    from scipy.stats import bootstrap  # here: scipy.stats takes most of a second to import in every stage

    ci = bootstrap(
        (data,), np.mean, confidence_level=LEVEL, n_resamples=RESAMPLES, method="percentile", rng=seed
    ).confidence_interval
    return float(ci.low), float(ci.high)


def win_rate(prefs: Sequence[float], seed: int = 0) -> dict:
    """{value, low, high, prompts}: a win rate and its interval."""
    low, high = interval(prefs, seed)
    return {"value": sum(prefs) / len(prefs), "low": low, "high": high, "prompts": len(prefs)}


def agreement(judge: Sequence[float], gold: Sequence[float], differs: Sequence[bool]) -> dict:
    """How often a judge sides with gold on answer pairs gold tells apart (a judge's tie counts half).

    Only pairs whose texts differ and whose gold scores differ count: on the others there is
    nothing to get right.
    """
    counted = [(j, g) for j, g, d in zip(judge, gold, differs, strict=True) if d and g != 0.5]
    scores = [1.0 if (j - 0.5) * (g - 0.5) > 0 else 0.5 if j == 0.5 else 0.0 for j, g in counted]
    if not scores:
        return {"value": None, "low": None, "high": None, "pairs": 0}
    low, high = interval(scores)
    return {"value": sum(scores) / len(scores), "low": low, "high": high, "pairs": len(scores)}


def order(rates: dict[str, dict]) -> list[str]:
    """Models from worst to best by their win rate against SFT."""
    return sorted(rates, key=lambda m: rates[m]["value"])


def untrusted(judge: str, entry: dict, min_accuracy: float, max_unparsed: float = 0.5) -> str | None:
    """Why a judge cannot be trusted, or None: a reward model below the accuracy floor, an LLM judge
    whose replies mostly name no verdict (its "ties" are then noise)."""
    if judge == "llm":
        replies, unparsed = entry.get("replies", 0), entry.get("unparsed_replies", 0)
        if replies and unparsed / replies > max_unparsed:
            limit = f"promotion.max_judge_unparsed {max_unparsed}"
            return f"{LABELS[judge]} named no verdict in {unparsed} of its {replies} replies (more than {limit})"
        return None
    if judge not in ("judge_rm", "training_rm"):
        return None  # gold is the truth; people's labels are what is asked of them
    accuracy = entry.get("held_out_accuracy")
    if accuracy is None:
        return f"{LABELS[judge]}'s held-out accuracy was not measured (no test-split comparisons)"
    if accuracy < min_accuracy:
        return (
            f"{LABELS[judge]}'s held-out accuracy {accuracy:.3f} is below promotion.min_judge_accuracy {min_accuracy}"
        )
    return None


def chosen(
    table: dict[str, dict], wanted: str, allow_training_rm: bool, min_accuracy: float, max_unparsed: float = 0.5
) -> tuple[str | None, str]:
    """The judge whose evidence decides promotion, and a phrase that says why it (or none) was taken.

    `wanted` is a judge's name or "auto": the most trusted independent judge measured. A reward
    model that orders held-out pairs near chance is no evidence: it would rank noise (on real
    data such a judge has been seen to prefer the untuned base model to SFT).
    """
    if wanted != "auto":
        if wanted not in table:
            return None, f"the judge params ask for ({wanted}) was not measured"
        if wanted == "training_rm" and not allow_training_rm:
            return None, "the training RM is no independent judge (promotion.allow_training_rm is false)"
        why = untrusted(wanted, table[wanted], min_accuracy, max_unparsed)
        return (None, why) if why else (wanted, f"{LABELS[wanted]}, as params ask")
    skipped = []
    for judge in INDEPENDENT:
        if judge in table:
            why = untrusted(judge, table[judge], min_accuracy, max_unparsed)
            if why is None:
                return judge, f"{LABELS[judge]}, the most trusted judge measured"
            skipped.append(why)
    if allow_training_rm and "training_rm" in table:
        why = untrusted("training_rm", table["training_rm"], min_accuracy)
        if why is None:
            return "training_rm", "training-RM, opted in by promotion.allow_training_rm: PPO optimised this judge"
        skipped.append(why)
    return None, "; ".join(["no independent judge", *skipped])
