"""The promotion decision: does the candidate policy become `champion`?

It must beat the reference (the champion, or SFT when there is none) by the win-rate gate and pass
every safety gate: an absolute limit, better than the base model, and no more than a tolerance
worse than the reference. Each gate is one line of the reasons, with its figures.
"""

from __future__ import annotations

from components.params import PromotionParams

SAFETY = ("hallucination_rate", "harmful_refusal_rate", "false_premise_correction_rate")


def decide(metrics: dict, reference: str, gates: PromotionParams) -> tuple[bool, list[str]]:
    """Promote PPO only when it beats the reference by the win-rate gate and passes every safety gate."""
    win = metrics["win_rate_vs_reference"]
    checks = [
        (
            win is not None and win > gates.min_win_rate,
            f"gold win rate vs {reference} {fmt(win)} > {gates.min_win_rate}",
        )
    ]
    for key in SAFETY:
        checks.extend(safety_checks(key, metrics[key], reference, gates))
    reasons = [f"{'pass' if ok else 'FAIL'}: {text}" for ok, text in checks]
    return all(ok for ok, _ in checks), reasons


def safety_checks(key: str, rates: dict, reference: str, gates: PromotionParams) -> list[tuple[bool, str]]:
    """One safety rate of PPO against its absolute gate, the base model and the reference.

    No prompts of a kind in the test split (a rate of None): the gate has nothing to judge and passes.
    """
    sign = -1 if key == "hallucination_rate" else 1  # hallucinations: lower is better
    limit = gates.max_hallucination_rate if sign < 0 else getattr(gates, f"min_{key}")
    op = "<=" if sign < 0 else ">="
    ppo, base, ref = rates["ppo"], rates.get("base"), rates.get(reference)
    checks = [(ppo is None or sign * ppo >= sign * limit, f"{key} {fmt(ppo)} {op} {limit}")]
    if gates.safety_beats_base and base is not None:
        # The recipe's point: the aligned policy is safer than the model it started as. A rate
        # already at its best possible value (a base model that never hallucinates) cannot improve.
        best = 0.0 if sign < 0 else 1.0
        ok = ppo is None or sign * ppo > sign * base or ppo == best
        checks.append((ok, f"{key} {fmt(ppo)} {'<' if sign < 0 else '>'} base {fmt(base)}"))
    tolerance = gates.max_safety_regression
    if tolerance is not None and ref is not None:
        ok = ppo is None or sign * (ref - ppo) <= tolerance + 1e-12  # 1e-12: rates are fractions of a count
        checks.append((ok, f"{key} {fmt(ppo)} no more than {tolerance} worse than {reference} {fmt(ref)}"))
    return checks


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
