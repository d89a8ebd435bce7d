"""The promotion decision: does the candidate policy become `champion`?

It must beat the reference (the champion, or SFT when there is none) by the win-rate gate, as
judged by evidence PPO did not optimise, and pass every safety gate: an absolute limit, better
than the base model, and no more than a tolerance worse than the reference. The win-rate gate
is on the lower bound of the 95% interval, so a handful of prompts cannot promote. Each gate is
one line of the reasons, naming its judge and its figures.
"""

from __future__ import annotations

from components.eval.judges import LABELS, chosen
from components.params import PromotionParams

SAFETY = ("hallucination_rate", "harmful_refusal_rate", "false_premise_correction_rate")


def decide(metrics: dict, reference: str, gates: PromotionParams) -> tuple[bool, list[str]]:
    """Promote PPO only when an independent judge says it beats the reference and every safety gate passes."""
    checks = [win_rate_check(metrics["judges"], reference, gates)]
    for key in SAFETY:
        checks.extend(safety_checks(key, metrics[key], reference, gates))
    reasons = [f"{'pass' if ok else 'FAIL'}: {text}" for ok, text in checks]
    return all(ok for ok, _ in checks), reasons


def win_rate_check(table: dict, reference: str, gates: PromotionParams) -> tuple[bool, str]:
    """The gate on the chosen judge's win rate of PPO against the reference: its interval's lower bound."""
    judge, why = chosen(table, gates.judge, gates.allow_training_rm, gates.min_judge_accuracy, gates.max_judge_unparsed)
    if judge is None:
        return False, f"not promoted: {why} (measured: {', '.join(LABELS[j] for j in table) or 'none'})"
    rate = table[judge]["win_rate_vs_reference"]
    low, high = rate["low"], rate["high"]
    text = (
        f"{LABELS[judge]} win rate vs {reference} {rate['value']:.3f} [{low:.3f}, {high:.3f}] "
        f"(95% interval lower bound > {gates.min_win_rate}; {rate['prompts']} prompts; judge: {why})"
    )
    return low > gates.min_win_rate, text


def safety_checks(key: str, rates: dict, reference: str, gates: PromotionParams) -> list[tuple[bool, str]]:
    """One safety rate of PPO against its absolute gate, the base model and the reference.

    No evidence (no gold grader, or no prompts of a kind in the test split): "not measured",
    which fails only when params list the rate in `required_safety`.
    """
    ppo, base, ref = rates["ppo"], rates.get("base"), rates.get(reference)
    if ppo is None:
        required = key in gates.required_safety
        note = "required by promotion.required_safety" if required else "not required"
        return [(not required, f"{key} not measured ({note})")]
    sign = -1 if key == "hallucination_rate" else 1  # hallucinations: lower is better
    limit = gates.max_hallucination_rate if sign < 0 else getattr(gates, f"min_{key}")
    op = "<=" if sign < 0 else ">="
    checks = [(sign * ppo >= sign * limit, f"{key} {fmt(ppo)} {op} {limit}")]
    if gates.safety_beats_base and base is not None:
        # The recipe's point: the aligned policy is safer than the model it started as. A rate
        # already at its best possible value (a base model that never hallucinates) cannot improve.
        best = 0.0 if sign < 0 else 1.0
        ok = sign * ppo > sign * base or ppo == best
        checks.append((ok, f"{key} {fmt(ppo)} {'<' if sign < 0 else '>'} base {fmt(base)}"))
    tolerance = gates.max_safety_regression
    if tolerance is not None and ref is not None:
        ok = sign * (ref - ppo) <= tolerance + 1e-12  # 1e-12: rates are fractions of a count
        checks.append((ok, f"{key} {fmt(ppo)} no more than {tolerance} worse than {reference} {fmt(ref)}"))
    return checks


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
