"""The simulated labeler: writes demonstrations, makes candidate answers, ranks them with noise.

Rankings are the gold score plus Gaussian noise whose scale is calibrated so that two
independent labelers order the same pair alike on `agreement_target` of pairs (0.73 in
the paper). Candidates for the first RM dataset are the ideal answer and corruptions of it.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable

from components.world.kb import PEOPLE, PLACES, World
from components.world.tasks import Task

FILLER = [
    "I hope this helps.",
    "Let me know if you have any other questions.",
    "This is a very good question.",
    "There is a lot more that could be said about this.",
    "Thank you for asking.",
]
REFUSAL = "I'm sorry, but I can't help with that."
COMPLIANCE = [
    "Sure. Wait until nobody is looking, then do it quickly.",
    "Here is how: go there at night and make sure nobody sees you.",
    "Easy. First find out where they are, then do it when they are alone.",
]


def _replace_word(text: str, old: str, new: str) -> str:
    return re.sub(rf"\b{re.escape(old)}\b", new, text)


def wrong_fact(t: Task, w: World, r: random.Random) -> str | None:
    if not t.swaps:
        return None
    value, pool = r.choice(t.swaps)
    ideal = r.choice(t.ideals)
    wrong = r.choice([v for v in pool if v != value])
    return _replace_word(ideal, value, wrong) if re.search(rf"\b{re.escape(value)}\b", ideal) else None


def partial(t: Task, w: World, r: random.Random) -> str | None:
    tokens = r.choice(t.ideals).split()
    return " ".join(tokens[: max(1, len(tokens) // 2)]).rstrip(".,!?:;") if len(tokens) > 2 else None


def hallucinated_detail(t: Task, w: World, r: random.Random) -> str:
    stranger = r.choice([p for p in PEOPLE if p.lower() not in t.spec["allowed"]])
    return f"{r.choice(t.ideals)} {stranger} lives in {r.choice(PLACES)}."


def needless_refusal(t: Task, w: World, r: random.Random) -> str | None:
    return None if t.overlay == "harmful" else REFUSAL


def rambling(t: Task, w: World, r: random.Random) -> str:
    return " ".join([r.choice(t.ideals), *r.sample(FILLER, r.randint(2, 4))])


def repetition(t: Task, w: World, r: random.Random) -> str:
    return " ".join([r.choice(t.ideals)] * r.randint(2, 3))


def base_continuation(t: Task, w: World, r: random.Random) -> str:
    """What a pretrained-only model does: continue the text instead of answering it."""
    a, b = w.two_people(r)
    return r.choice(
        [
            f"Where does {a.name} live? What is {b.name}'s job?",
            f"{a.name} has a {a.pet}. {b.name} likes {b.food}.",
            f"{t.messages[-1]['content']} {t.messages[-1]['content']}",
        ]
    )


def harmful_compliance(t: Task, w: World, r: random.Random) -> str | None:
    return r.choice(COMPLIANCE) if t.overlay == "harmful" else None


def premise_accepted(t: Task, w: World, r: random.Random) -> str | None:
    if t.overlay != "false_premise":
        return None
    wrong = t.spec["wrong"]
    return r.choice(
        [
            f"It was a big change, and the {wrong} part went well.",
            f"Yes, {wrong} was a happy time for everyone.",
            f"That year with the {wrong} was full of good days.",
        ]
    )


CORRUPTIONS: list[Callable[[Task, World, random.Random], str | None]] = [
    wrong_fact,
    partial,
    hallucinated_detail,
    needless_refusal,
    rambling,
    repetition,
    base_continuation,
    harmful_compliance,
    premise_accepted,
]


def demonstration(t: Task, r: random.Random) -> str:
    """What a labeler writes: one of the ideal phrasings."""
    return r.choice(t.ideals)


def candidates(t: Task, w: World, r: random.Random, k: int) -> list[str]:
    """Up to k distinct answers: one ideal and corruptions, in random order."""
    found = [r.choice(t.ideals)]
    for _ in range(20 * k):
        if len(found) >= k:
            break
        text = r.choice(CORRUPTIONS)(t, w, r)
        if text and text not in found:
            found.append(text)
    r.shuffle(found)
    return found


def ranks_from_utilities(utilities: list[float], tie_margin: float) -> list[int]:
    """Dense ranks, 1 = best; neighbours closer than tie_margin share a rank."""
    order = sorted(range(len(utilities)), key=lambda i: -utilities[i])
    ranks = [0] * len(utilities)
    rank = 1
    for pos, i in enumerate(order):
        if pos and utilities[order[pos - 1]] - utilities[i] >= tie_margin:
            rank += 1
        ranks[i] = rank
    return ranks


def noisy_ranks(golds: list[float], sigma: float, tie_margin: float, r: random.Random) -> list[int]:
    return ranks_from_utilities([g + r.gauss(0.0, sigma) for g in golds], tie_margin)


def expected_agreement(gold_lists: list[list[float]], sigma: float) -> float:
    """Share of pairs two independent labelers order alike, if utilities are gold + N(0, sigma)."""
    total, agree = 0, 0.0
    for golds in gold_lists:
        for i in range(len(golds)):
            for j in range(i + 1, len(golds)):
                # P(one labeler prefers i) = Phi(delta / (sigma * sqrt 2)); two agree with p^2 + (1-p)^2.
                p = 0.5 * (1 + math.erf((golds[i] - golds[j]) / (2 * sigma)))
                agree += p * p + (1 - p) * (1 - p)
                total += 1
    return agree / total if total else 1.0


def calibrate_noise(gold_lists: list[list[float]], target: float) -> float:
    """The sigma at which expected agreement equals target (agreement falls as sigma grows)."""
    lo, hi = 1e-4, 10.0
    if expected_agreement(gold_lists, lo) < target:
        return lo  # candidates too alike to reach the target even without noise
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if expected_agreement(gold_lists, mid) > target else (lo, mid)
    return math.sqrt(lo * hi)


def rank_all(
    golds: list[list[float]], target: float, tie_margin: float, seed: str, fallback: float | None = None
) -> tuple[list[list[int]], dict]:
    """Rank every candidate list with noise calibrated on these very lists to the target agreement,
    and measure the agreement of two fresh labelers on them.

    Calibrating on the lists being ranked matters: the paper's 73% was measured on the outputs its
    labelers ranked. Corruptions of an ideal answer lie far apart in gold score, a policy's own
    samples close together, so one noise level cannot give both the same agreement. Lists too
    alike to reach the target even without noise (an untrained model's answers, all scoring 0)
    get the `fallback` noise when one is given.
    """
    sigma = calibrate_noise(golds, target)
    if fallback is not None and expected_agreement(golds, sigma) < target - 0.01:
        sigma = fallback
    rank_r, a_r, b_r = (random.Random(f"{name}-{seed}") for name in ("labeler", "agree-a", "agree-b"))
    ranks, agree, total = [], 0, 0
    for g in golds:
        ranks.append(noisy_ranks(g, sigma, tie_margin, rank_r))
        x, n = pair_agreement(noisy_ranks(g, sigma, tie_margin, a_r), noisy_ranks(g, sigma, tie_margin, b_r))
        agree, total = agree + x, total + n
    measured = round(agree / total, 4) if total else None  # no comparisons asked for
    return ranks, {"labeler_noise": round(sigma, 6), "labeler_agreement": measured, "pairs": total}


def pair_agreement(a: list[int], b: list[int]) -> tuple[int, int]:
    """(pairs ordered alike, pairs) between two rankings of the same candidates; a tie matches only a tie."""
    agree = total = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            sa, sb = (a[i] > a[j]) - (a[i] < a[j]), (b[i] > b[j]) - (b[i] < b[j])
            agree += sa == sb
            total += 1
    return agree, total
