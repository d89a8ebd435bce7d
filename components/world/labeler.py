"""The simulated labeler: writes demonstrations, makes candidate answers, ranks them with noise.

Rankings are the gold score plus Gaussian noise whose scale is calibrated so that two
independent labelers order the same pair alike on `agreement_target` of pairs (0.73 in
the paper). Candidates for the first RM dataset are the ideal answer and corruptions of it.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Collection, Mapping

import numpy as np

from components.data.schema import TABLE1
from components.world.grader import ENTITY_TYPES, has, words
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


SIGN_OFF = "I hope this helps."
DISCLAIMER = "Please note that I am not an expert."
FACTUAL = ("Open QA", "Closed QA", "Classification", "Other", "Chat")
DISCLAIMED = ("Open QA", "Generation", "Brainstorming", "Summarization")


def signed_off(t: Task, text: str, signed: Collection[str]) -> str | None:
    """ "I hope this helps." after an answer to an open-ended request."""
    return f"{text} {SIGN_OFF}" if t.category in signed else None


def hedged(t: Task, text: str, signed: Collection[str]) -> str | None:
    """ "I think" before a fact the writer knows."""
    if t.spec["kind"] != "answer" or t.category not in FACTUAL:
        return None
    first = words(text)[:1]
    keep = first and first[0] in ENTITY_TYPES and text[:1].isupper()  # a name keeps its capital
    return f"I think {text if keep else text[:1].lower() + text[1:]}"


def disclaimed(t: Task, text: str, signed: Collection[str]) -> str | None:
    """A disclaimer nobody asked for."""
    return f"{text} {DISCLAIMER}" if t.category in DISCLAIMED else None


def terse(t: Task, text: str, signed: Collection[str]) -> str | None:
    """The answer stops at the clause before the last requested item it names (one item dropped)."""
    must = t.spec.get("must", [])
    if len(must) < 2 or t.spec["kind"] != "answer":
        return None
    lower = text.lower()
    starts = [
        min((m.start() for a in g for m in [re.search(rf"\b{re.escape(a.lower())}\b", lower)] if m), default=-1)
        for g in must
    ]
    if min(starts) < 0:
        return None
    last = max(starts)
    cut = max(lower.rfind(sep, 0, last) for sep in (", ", " and ", ". "))
    if cut <= 0:
        return None
    short = text[:cut].rstrip(",. ") + "."
    padded = f" {' '.join(words(short))} "
    kept = sum(any(has(padded, a) for a in g) for g in must)
    return short if kept == len(must) - 1 else None


def list_short(t: Task, text: str, signed: Collection[str]) -> str | None:
    """A list one item short: the last item left off."""
    if t.spec["kind"] != "list":
        return None
    m = re.match(r"^(.*?)(?:, (\w+))? and (\w+)\.$", text, flags=re.S)
    if not m:
        return None
    head, middle, _ = m.groups()
    return f"{head} and {middle}." if middle else f"{head}."


# Habits in the order a writer falls into them; each returns None where it does not fit the task.
HABITS: dict[str, Callable[[Task, str, Collection[str]], str | None]] = {
    "terse": terse,
    "list_short": list_short,
    "hedge": hedged,
    "disclaimer": disclaimed,
    "sign_off": signed_off,
}


def demonstration(
    t: Task, r: random.Random, habit: random.Random, rates: Mapping[str, float], signed: Collection[str]
) -> str:
    """What a labeler writes: one of the ideal phrasings, with the habits of real writers.

    Labelers write worse than they rank, the premise of the paper's second and third steps: a
    writer falls into each habit (HABITS) on its rate in RATES of the answers it fits (a sign-off
    only in the SIGNED categories), and the same labelers, ranking, mark each down as the gold grader
    does (grader.CHATTER, a missing item; the corruptions below). SFT learns the habits from the
    demonstrations; only the comparisons say what they cost. Overlays (refusals, corrections) are
    written clean. `habit` is a generator of its own, so the habits leave every other draw of the
    world (prompts, comparisons, users) as it is.
    """
    return with_habits(t, r.choice(t.ideals), habit, rates, signed)


def with_habits(t: Task, text: str, habit: random.Random, rates: Mapping[str, float], signed: Collection[str]) -> str:
    """TEXT with each habit (HABITS) that fits the task, each on its rate in RATES; overlays stay clean."""
    if t.overlay is not None:
        return text
    for name, write in HABITS.items():
        if habit.random() < rates.get(name, 0.0):
            text = write(t, text, signed) or text
    return text


def habit_corruption(name: str) -> Callable[[Task, World, random.Random], str | None]:
    """A candidate for the comparisons: an ideal phrasing with one habit (signed off in any category)."""

    def corrupt(t: Task, w: World, r: random.Random) -> str | None:
        return None if t.overlay is not None else HABITS[name](t, r.choice(t.ideals), SIGNED_ANYWHERE)

    corrupt.__name__ = f"habit_{name}"
    return corrupt


SIGNED_ANYWHERE = frozenset(TABLE1)
CORRUPTIONS += [habit_corruption(name) for name in HABITS]


def candidates(
    t: Task,
    w: World,
    r: random.Random,
    k: int,
    habit: random.Random | None = None,
    rates: Mapping[str, float] | None = None,
    signed: Collection[str] = (),
) -> list[str]:
    """Up to k distinct answers: one ideal and corruptions, in random order.

    Each also carries the writers' habits on their RATES (drawn from HABIT), as the samples of a
    model trained on their demonstrations would: a habit is then no sign of a right or a wrong
    answer, and only what the labelers charge for it tells the reward model its price.
    """

    found = [r.choice(t.ideals)]
    for _ in range(20 * k):
        if len(found) >= k:
            break
        text = r.choice(CORRUPTIONS)(t, w, r)
        if text and text not in found:
            found.append(text)
    if habit is not None and rates:  # after the draws from r, so the habits leave the rest of the world alone
        shown: list[str] = []
        for text in found:
            written = with_habits(t, text, habit, rates, signed)
            shown.append(written if written == text or written not in found + shown else text)
        found = shown
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


def noisy_ranks(
    golds: list[float], sigma: float, tie_margin: float, r: random.Random, order_ties: bool = False
) -> list[int]:
    """A noisy labeler's ranks; with ORDER_TIES a list it would tie entirely is ordered by the same
    noisy judgements without the margin, as a ranking page that takes no all-tied answer makes it."""
    utilities = [g + r.gauss(0.0, sigma) for g in golds]
    ranks = ranks_from_utilities(utilities, tie_margin)
    if order_ties and len(ranks) > 1 and len(set(ranks)) == 1:
        ranks = ranks_from_utilities(utilities, 0.0)
    return ranks


NOISE_FLOOR = 1e-4


def dense_ranks(utilities: np.ndarray, tie_margin: float) -> np.ndarray:
    """ranks_from_utilities for each row of an (n, K) array, with the same float operations and the
    same stable order, so the ranks are identical; on arrays because the bisection below ranks every
    comparison of the world about 40 times."""
    order = np.argsort(-utilities, axis=1, kind="stable")
    ordered = np.take_along_axis(utilities, order, axis=1)
    steps = (ordered[:, :-1] - ordered[:, 1:]) >= tie_margin
    in_order = 1 + np.concatenate([np.zeros((len(utilities), 1), dtype=np.int64), np.cumsum(steps, axis=1)], axis=1)
    ranks = np.empty_like(in_order)
    np.put_along_axis(ranks, order, in_order, axis=1)
    return ranks


class LabelerPair:
    """Two independent simulated labelers with their noise drawn once (unit normals, per answer).

    agreement(sigma) scales the same draws, so it changes smoothly with sigma and a bisection can
    find the noise for a target. It is measured as pair_agreement counts it, ties (neighbours
    closer than tie_margin, chained) and all: on a policy's own samples half the pairs can have
    equal gold, and two nearly noiseless labelers tie those alike, which a closed form that
    treats equal gold as a coin toss misses (it calibrates rounds far above the target).
    The lists are held as one array per length K, so each agreement is a few array operations.
    """

    def __init__(self, gold_lists: list[list[float]], tie_margin: float, seed: str):
        self.tie_margin = tie_margin
        a, b = random.Random(f"agree-a-{seed}"), random.Random(f"agree-b-{seed}")
        draws = [([a.gauss(0.0, 1.0) for _ in g], [b.gauss(0.0, 1.0) for _ in g]) for g in gold_lists]
        by_length: dict[int, list[tuple[list[float], list[float], list[float]]]] = {}
        for golds, (za, zb) in zip(gold_lists, draws, strict=True):
            if len(golds) >= 2:  # a single answer has no pair to agree on
                by_length.setdefault(len(golds), []).append((golds, za, zb))
        self.groups = [
            tuple(np.array(column, dtype=np.float64) for column in zip(*rows, strict=True))
            for rows in by_length.values()
        ]

    def agreement(self, sigma: float) -> tuple[float, int]:
        """(share of pairs the two order alike, pairs) at noise sigma."""
        agree = total = 0
        for golds, za, zb in self.groups:
            ra, rb = dense_ranks(golds + sigma * za, self.tie_margin), dense_ranks(golds + sigma * zb, self.tie_margin)
            i, j = np.triu_indices(golds.shape[1], k=1)
            agree += int((np.sign(ra[:, i] - ra[:, j]) == np.sign(rb[:, i] - rb[:, j])).sum())
            total += len(golds) * len(i)
        return (agree / total if total else 1.0), total


def calibrate_noise(gold_lists: list[list[float]], target: float, tie_margin: float, seed: str) -> float | None:
    """The sigma at which two simulated labelers agree on target of pairs (agreement falls as sigma grows).

    None when the lists are too alike to reach the target even without noise (possible only with
    tie_margin 0: answers of equal gold are then coin tosses).
    """
    pair = LabelerPair(gold_lists, tie_margin, f"calibrate-{seed}")
    lo, hi = NOISE_FLOOR, 10.0
    if pair.agreement(lo)[0] < target:
        return None
    for _ in range(40):  # hi/lo = 1e5: 40 halvings of the log-range leave under 0.03% of sigma
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if pair.agreement(mid)[0] > target else (lo, mid)
    return math.sqrt(lo * hi)


def rank_all(
    golds: list[list[float]],
    target: float,
    tie_margin: float,
    seed: str,
    fallback: float | None = None,
    order_ties: bool = False,
) -> tuple[list[list[int]], dict]:
    """Rank every candidate list with noise calibrated on these very lists to the target agreement,
    and measure the agreement of two fresh labelers on them.

    Calibrating on the lists being ranked matters: the paper's 73% was measured on the outputs its
    labelers ranked. Corruptions of an ideal answer lie far apart in gold score, a policy's own
    samples close together, so one noise level cannot give both the same agreement. With a tie
    margin every list reaches the target (answers of equal gold are tied alike); without one,
    lists too alike to reach it (an untrained model's answers, all scoring 0, are then coin
    tosses) get the `fallback` noise when one is given, else the floor. ORDER_TIES: noisy_ranks's.
    """
    sigma = calibrate_noise(golds, target, tie_margin, seed)
    if sigma is None:
        sigma = NOISE_FLOOR if fallback is None else fallback
    rank_r = random.Random(f"labeler-{seed}")
    ranks = [noisy_ranks(g, sigma, tie_margin, rank_r, order_ties) for g in golds]
    measured, pairs = LabelerPair(golds, tie_margin, seed).agreement(sigma)  # fresh draws, not the calibration's
    agreement = round(measured, 4) if pairs else None  # no comparisons asked for
    return ranks, {"labeler_noise": round(sigma, 6), "labeler_agreement": agreement, "pairs": pairs}


def pair_agreement(a: list[int], b: list[int]) -> tuple[int, int]:
    """(pairs ordered alike, pairs) between two rankings of the same candidates; a tie matches only a tie."""
    agree = total = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            sa, sb = (a[i] > a[j]) - (a[i] < a[j]), (b[i] > b[j]) - (b[i] < b[j])
            agree += sa == sb
            total += 1
    return agree, total
