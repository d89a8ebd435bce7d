"""`instructflow data generate`: write the embedded default world's data files.

Sizes are Table 6 sizes times `data.scale` (demonstrations also times
`data.demonstrations_factor`); categories follow Table 1 in each file;
prompts are unique across all files; users own at most `max_prompts_per_user` prompts
each and span files, as customers do. `heldout.jsonl` holds test prompts worded only in the
phrasing families no training file draws from (components/world/phrasing.py). The same params
give byte-identical files.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from pathlib import Path

from components.data.io import atomic_path, write_json, write_jsonl
from components.data.prepare import split_records
from components.data.schema import (
    COMPARISONS,
    CORPUS,
    DEMONSTRATIONS,
    PROMPTS,
    TABLE1,
    TABLE6_PPO,
    TABLE6_RM,
    TABLE6_SFT,
    TABLE6_TEST,
    prompt_text,
)
from components.params import Params
from components.world import labeler
from components.world.corpus import corpus
from components.world.grader import HABIT_PHRASES, grade, has, words
from components.world.kb import World, build_world
from components.world.overlays import FALSE_PREMISE, HARMFUL
from components.world.phrasing import Say
from components.world.tasks import BUILDERS, Task
from components.world.truthful import truthful_questions

GOLD = "gold.jsonl"
STATS = "stats.json"
TRUTHFULQA = "truthfulqa.jsonl"  # not a native file: evaluation's multiple-choice benchmark
HELD_OUT = "heldout.jsonl"  # not a native file: evaluation's prompts in held-out phrasings
PREFIX = {DEMONSTRATIONS: "demo", COMPARISONS: "cmp", PROMPTS: "prm", HELD_OUT: "hld"}


def file_sizes(scale: float, demonstrations_factor: float = 1.0) -> dict[str, int]:
    return {
        DEMONSTRATIONS: max(10, round(scale * demonstrations_factor * TABLE6_SFT)),
        COMPARISONS: max(10, round(scale * TABLE6_RM)),
        PROMPTS: max(10, round(scale * (TABLE6_PPO + TABLE6_TEST))),
    }


def category_plan(n: int, r: random.Random) -> list[str]:
    """n categories in Table 1 proportions (largest remainder), shuffled."""
    exact = {c: n * share / sum(TABLE1.values()) for c, share in TABLE1.items()}
    counts = {c: math.floor(x) for c, x in exact.items()}
    for c in sorted(exact, key=lambda c: counts[c] - exact[c])[: n - sum(counts.values())]:
        counts[c] += 1
    plan = [c for c, k in counts.items() for _ in range(k)]
    r.shuffle(plan)
    return plan


class TaskMaker:
    """Draws tasks for a category, with the overlays mixed in and every prompt text unique."""

    def __init__(self, world: World, params: Params, r: random.Random, seen: set[str] | None = None):
        self.world, self.r, self.seen = world, r, set() if seen is None else seen
        self.p_harmful = params.data.harmful_fraction / sum(TABLE1[c] for c in HARMFUL)
        self.p_premise = params.data.false_premise_fraction / sum(TABLE1[c] for c in FALSE_PREMISE)

    def builders(self, category: str) -> list:
        """The overlay's builder, or the category's regular builders (one drawn per attempt)."""
        u = self.r.random()
        if category in HARMFUL and u < self.p_harmful:
            return [HARMFUL[category]]
        if category in FALSE_PREMISE and u < self.p_harmful + self.p_premise:
            return [FALSE_PREMISE[category]]
        return BUILDERS[category]

    def make(self, category: str, held_out: bool = False, builders: list | None = None) -> Task:
        """A task of CATEGORY (from BUILDERS when given), worded in the held-out phrasings when HELD_OUT."""
        builders = builders or self.builders(category)
        say = Say(self.r, held_out=held_out)
        for _ in range(2000):
            t = self.r.choice(builders)(self.world, say)
            key = prompt_text(t.messages)
            if key not in self.seen:
                self.seen.add(key)
                return t
        raise ValueError(f"the world ran out of unique {category} prompts: lower data.scale")


def assign_users(n: int, params: Params, r: random.Random) -> list[str]:
    """User ids for n prompts in a shuffled order: users of varied size, at most the cap each."""
    ids: list[str] = []
    while len(ids) < n:
        size = min(params.data.max_prompts_per_user, 1 + int(r.expovariate(1 / 8)))
        ids.extend([f"user-{len(set(ids)):05d}"] * size)
    ids = ids[:n]
    r.shuffle(ids)
    return ids


def build_records(
    params: Params, world: World, r: random.Random
) -> tuple[dict[str, list[dict]], list[dict], list[Task]]:
    sizes = file_sizes(params.data.scale, params.data.demonstrations_factor)
    maker = TaskMaker(world, params, r)
    slots = [(name, category) for name, n in sizes.items() for category in category_plan(n, r)]
    users = assign_users(len(slots), params, r)
    records: dict[str, list[dict]] = {name: [] for name in sizes}
    gold, tasks = [], []
    habit, lab = random.Random(f"habit-{params.data.seed}"), params.labeler
    rates = lab.habits.model_dump()
    sampled = random.Random(f"sample-habits-{params.data.seed}")  # the habits of the comparisons' answers
    for (name, category), user_id in zip(slots, users, strict=True):
        t = maker.make(category)
        rid = f"{PREFIX[name]}-{len(records[name]):06d}"
        record = {"id": rid, "user_id": user_id, "category": category, "messages": t.messages}
        if name == DEMONSTRATIONS:
            record["completion"] = labeler.demonstration(t, r, habit, rates, lab.sign_off_categories)
        elif name == COMPARISONS:
            k = r.randint(params.data.k_min, params.data.k_max)
            record["completions"] = labeler.candidates(t, world, r, k, sampled, rates, lab.sign_off_categories)
            tasks.append(t)
        records[name].append(record)
        gold.append({"id": rid, **t.spec})
    return records, gold, tasks


def held_out_records(params: Params, world: World, seen: set[str]) -> tuple[list[dict], list[dict]]:
    """Test prompts in the held-out phrasing families, by Table 1, and as many of each overlay as params say.

    SEEN is every training prompt's text: none is drawn again.
    """
    r = random.Random(f"held-out-{params.data.seed}")
    maker = TaskMaker(world, params, r, seen)
    plan = [(c, None) for c in category_plan(params.data.held_out_prompts, r)]
    for overlay in (HARMFUL, FALSE_PREMISE):
        plan += [(c, [overlay[c]]) for c in (r.choice(list(overlay)) for _ in range(params.data.held_out_overlays))]
    records, gold = [], []
    for category, builders in plan:
        t = maker.make(category, held_out=True, builders=builders or BUILDERS[category])
        rid = f"{PREFIX[HELD_OUT]}-{len(records):06d}"
        records.append({"id": rid, "user_id": "held-out", "category": category, "messages": t.messages})
        gold.append({"id": rid, **t.spec})
    return records, gold


def label_comparisons(comparisons: list[dict], tasks: list[Task], params: Params, seed: int) -> dict:
    """Rank every comparison with calibrated noise; measure two fresh labelers' agreement."""
    golds = [[grade(t.spec, c).score for c in rec["completions"]] for rec, t in zip(comparisons, tasks, strict=True)]
    # A comparison of the world is a ranking every file must learn from (validate's untied_pair rule);
    # a round's policy samples, alike in gold, may tie entirely and are then left out (loop/samples.py).
    lab = params.labeler
    ranks, agreement = labeler.rank_all(golds, lab.agreement_target, lab.tie_margin, str(seed), order_ties=True)
    for rec, k in zip(comparisons, ranks, strict=True):
        rec["ranks"] = k
    return agreement


def stats(records: dict[str, list[dict]], gold: list[dict], params: Params) -> dict:
    by_split: dict[str, dict[str, dict[str, int]]] = {}
    where = split_records(records, params.prepare)
    for name, recs in records.items():
        table: dict[str, Counter] = {}
        for rec, split in zip(recs, where[name], strict=True):
            table.setdefault(rec["category"], Counter())[split] += 1
        by_split[name] = {c: dict(sorted(table[c].items())) for c in TABLE1 if c in table}
    comparisons = records[COMPARISONS]
    kinds = Counter(g["kind"] for g in gold)
    return {
        "records": {name: len(recs) for name, recs in records.items()},
        "categories_by_split": by_split,
        "k_distribution": {str(k): v for k, v in sorted(Counter(len(r["completions"]) for r in comparisons).items())},
        "users": len({r["user_id"] for recs in records.values() for r in recs}),
        "overlays": {"harmful": kinds["harmful"], "false_premise": kinds["false_premise"]},
        "signed_off_demonstrations": sum(r["completion"].endswith(labeler.SIGN_OFF) for r in records[DEMONSTRATIONS]),
        "habits_in_demonstrations": habit_counts(records[DEMONSTRATIONS]),
    }


def habit_counts(demonstrations: list[dict]) -> dict[str, int]:
    """Demonstrations that show each phrase habit (an omission leaves no mark to count)."""
    texts = [" " + " ".join(words(r["completion"])) + " " for r in demonstrations]
    return {h: sum(any(has(t, p) for p in phrases) for t in texts) for h, phrases in HABIT_PHRASES.items()}


def run_generate(params: Params, out: Path) -> dict:
    """Write demonstrations, comparisons, prompts, corpus, gold and stats into OUT; return stats."""
    start = time.perf_counter()
    seed = params.data.seed
    world = build_world(seed)
    r = random.Random(f"data-{seed}")
    records, gold, tasks = build_records(params, world, r)
    seen = {prompt_text(rec["messages"]) for recs in records.values() for rec in recs}
    held_out, held_out_gold = held_out_records(params, world, seen)
    agreement = label_comparisons(records[COMPARISONS], tasks, params, seed)
    docs = corpus(world, random.Random(f"corpus-{seed}"), params.data.corpus_docs)
    truthful = truthful_questions(world, random.Random(f"truthfulqa-{seed}"), params.data.truthfulqa_questions)
    summary = {
        **stats(records, gold, params),
        **agreement,
        "corpus_docs": len(docs),
        "truthfulqa_questions": len(truthful),
        "held_out_prompts": len(held_out),
    }
    with atomic_path(out) as tmp:
        for name, recs in records.items():
            write_jsonl(tmp / name, recs)
        write_jsonl(tmp / CORPUS, docs)
        write_jsonl(tmp / GOLD, gold + held_out_gold)
        if held_out:
            write_jsonl(tmp / HELD_OUT, held_out)
        if truthful:
            write_jsonl(tmp / TRUTHFULQA, truthful)
        write_json(tmp / STATS, summary)
    return {**summary, "seconds": round(time.perf_counter() - start, 2)}
