"""The generated default world: sizes, proportions, users, uniqueness, agreement, determinism."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from components.data.io import read_jsonl
from components.data.schema import CATEGORIES, COMPARISONS, CORPUS, DEMONSTRATIONS, PROMPTS, SPLITS, TABLE1, prompt_text
from components.params import Params
from components.world import labeler, phrasing
from components.world.generate import file_sizes, run_generate
from components.world.grader import HABITS, grade
from components.world.labeler import SIGN_OFF
from components.world.tasks import Task

from .conftest import ROOT, TINY, tool_env

FILES = (DEMONSTRATIONS, COMPARISONS, PROMPTS)


def load(data: Path) -> dict[str, list[dict]]:
    return {name: read_jsonl(data / name) for name in (*FILES, CORPUS, "gold.jsonl", "heldout.jsonl")}


def test_sizes_are_table6_times_scale(tiny_data: Path, tiny_params: Params) -> None:
    data = load(tiny_data)
    for name, n in file_sizes(tiny_params.data.scale, tiny_params.data.demonstrations_factor).items():
        assert len(data[name]) == n
    assert file_sizes(1.0) == {DEMONSTRATIONS: 14378, COMPARISONS: 51094, PROMPTS: 50525}
    assert file_sizes(0.05, 4.0) == {DEMONSTRATIONS: 2876, COMPARISONS: 2555, PROMPTS: 2526}
    assert len(data[CORPUS]) == tiny_params.data.corpus_docs


def test_every_file_follows_table1(tiny_data: Path) -> None:
    for name in FILES:
        records = read_jsonl(tiny_data / name)
        counts = Counter(r["category"] for r in records)
        assert set(counts) <= set(CATEGORIES)
        for category, share in TABLE1.items():  # largest remainder: within one record of the exact share
            assert abs(counts[category] - share * len(records)) <= 1, (name, category)


def test_records_follow_the_contract(tiny_data: Path, tiny_params: Params) -> None:
    data = load(tiny_data)
    texts = [prompt_text(r["messages"]) for name in FILES for r in data[name]]
    assert len(texts) == len(set(texts)), "prompts are unique across all files"
    for name in FILES:
        for r in data[name]:
            assert r["messages"][-1]["role"] == "user" and all(m["content"] for m in r["messages"])
    for r in data[COMPARISONS]:
        k = len(r["completions"])
        assert tiny_params.data.k_min <= k <= tiny_params.data.k_max and len(r["ranks"]) == k
        assert len(set(r["ranks"])) > 1 and min(r["ranks"]) == 1
    users = Counter(r["user_id"] for name in FILES for r in data[name])
    assert max(users.values()) <= tiny_params.data.max_prompts_per_user
    spanning = {r["user_id"] for r in data[DEMONSTRATIONS]} & {r["user_id"] for r in data[COMPARISONS]}
    assert spanning, "users span files, as customers do"
    gold_ids = {g["id"] for g in data["gold.jsonl"]}
    assert gold_ids == {r["id"] for name in (*FILES, "heldout.jsonl") for r in data[name]}


def as_task(record: dict, spec: dict, text: str) -> Task:
    overlay = spec["kind"] if spec["kind"] in ("harmful", "false_premise") else None
    return Task(record["category"], record["messages"], [text], spec, overlay=overlay)


def test_demonstrations_are_ideal_but_for_the_writers_habits(tiny_data: Path, tiny_params: Params) -> None:
    data = load(tiny_data)
    gold = {g["id"]: g for g in data["gold.jsonl"]}
    signed = [r for r in data[DEMONSTRATIONS] if r["completion"].endswith(SIGN_OFF)]
    assert signed and all(r["category"] in tiny_params.labeler.sign_off_categories for r in signed)
    for r in data[DEMONSTRATIONS]:
        text, spec = r["completion"], gold[r["id"]]
        meant = grade(spec, text, forgive=HABITS).score
        assert meant >= 0.9, (r["id"], text)  # what the writer meant to say is an ideal answer
        if spec["kind"] in ("harmful", "false_premise"):
            assert grade(spec, text).score == meant  # refusals and corrections are written clean
        elif grade(spec, text).score < meant:  # and each habit costs what the raters charge for it
            assert grade(spec, text).score <= meant - 0.1 + 1e-9, (r["id"], text)
    stats = json.loads((tiny_data / "stats.json").read_text())
    assert stats["signed_off_demonstrations"] == len(signed)


NO_HABITS = [*(f"labeler.habits.{h}=0" for h in HABITS), "data.corpus_docs=10"]


@pytest.fixture(scope="module")
def perfect_writers(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The default world written with no habit at all (every habit's test compares with it)."""
    from components.params import load_params

    out = tmp_path_factory.mktemp("plain")
    run_generate(load_params(ROOT / "params.yaml", NO_HABITS), out)
    return load(out)


@pytest.mark.parametrize("habit", HABITS)
def test_each_habit_is_the_share_in_params_and_leaves_the_rest_of_the_world_alone(
    tmp_path: Path, habit: str, perfect_writers: dict
) -> None:
    from components.params import load_params

    params = load_params(ROOT / "params.yaml", [*NO_HABITS, f"labeler.habits.{habit}=0.6"])
    run_generate(params, tmp_path / habit)
    plain, written = perfect_writers, load(tmp_path / habit)
    for name in (PROMPTS, CORPUS, "gold.jsonl", "heldout.jsonl"):
        assert plain[name] == written[name], name
    asked = [
        [{k: v for k, v in r.items() if k not in ("completions", "ranks")} for r in w[COMPARISONS]]
        for w in (plain, written)
    ]
    assert asked[0] == asked[1]  # the same prompts compared; their answers carry the habit as samples would
    gold = {g["id"]: g for g in plain["gold.jsonl"]}
    fits = took = 0
    for a, b in zip(plain[DEMONSTRATIONS], written[DEMONSTRATIONS], strict=True):
        with_habit = labeler.HABITS[habit](as_task(a, gold[a["id"]], a["completion"]), a["completion"],
                                           params.labeler.sign_off_categories)  # fmt: skip
        if gold[a["id"]]["kind"] in ("harmful", "false_premise") or with_habit is None:
            assert b["completion"] == a["completion"]  # the habit does not fit: the writer writes the ideal
            continue
        assert b["completion"] in (a["completion"], with_habit)
        fits, took = fits + 1, took + (b["completion"] == with_habit)
    assert fits > 100 and 0.5 <= took / fits <= 0.7, (fits, took)  # the rate in params, within sampling error
    phrase = {"sign_off": SIGN_OFF, "hedge": "I think", "disclaimer": labeler.DISCLAIMER}.get(habit)
    if phrase is not None:  # the comparisons' answers carry it too, right or wrong, as a model's samples would
        shown = [sum(phrase in c for r in w[COMPARISONS] for c in r["completions"]) for w in (plain, written)]
        assert shown[1] > 2 * shown[0], shown


def held_out_pattern(template: str) -> re.Pattern:
    """A template as a regular expression: its alternatives as groups, its slots as any text."""
    parts = re.split(r"(\[[^\]]*\]|\{[a-zA-Z_]+\})", template)
    out = []
    for part in parts:
        if part.startswith("["):
            out.append("(?:" + "|".join(re.escape(a) for a in part[1:-1].split("|")) + ")")
        elif part.startswith("{"):
            out.append(".+?")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out), re.S | re.I)


def test_held_out_phrasings_reach_no_training_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from components.params import load_params

    drawn: dict[bool, set[str]] = {True: set(), False: set()}
    original = phrasing.family_templates

    def recording(families, held_out):
        templates = original(families, held_out)
        drawn[held_out].update(templates)
        return templates

    monkeypatch.setattr(phrasing, "family_templates", recording)
    params = load_params(ROOT / "params.yaml", ["data.corpus_docs=10", "data.scale=0.01", "data.held_out_prompts=200"])
    run_generate(params, tmp_path / "data")
    data = load(tmp_path / "data")
    assert drawn[True] and not drawn[True] & drawn[False]
    patterns = [held_out_pattern(t) for t in drawn[True]]
    held_out_turns = [m["content"] for r in data["heldout.jsonl"] for m in r["messages"] if m["role"] == "user"]
    matched = sum(any(p.search(turn) for p in patterns) for turn in held_out_turns)
    assert matched >= 0.7 * len(held_out_turns)  # the patterns find held-out phrasings (typos hide a few)
    for name in FILES:
        for r in data[name]:
            for m in (m for m in r["messages"] if m["role"] == "user"):
                assert not any(p.search(m["content"]) for p in patterns), (name, r["id"], m["content"])
    training = {prompt_text(r["messages"]) for name in FILES for r in data[name]}
    assert not training & {prompt_text(r["messages"]) for r in data["heldout.jsonl"]}
    kinds = Counter(g["kind"] for g in data["gold.jsonl"] if g["id"].startswith("hld-"))
    assert kinds["harmful"] == kinds["false_premise"] == params.data.held_out_overlays


def test_rankings_follow_gold(tiny_data: Path) -> None:
    data = load(tiny_data)
    gold = {g["id"]: g for g in data["gold.jsonl"]}
    # The labeler's top choice is, on average, far better than its bottom one.
    best, worst = [], []
    for r in data[COMPARISONS]:
        scores = [grade(gold[r["id"]], c).score for c in r["completions"]]
        best.append(scores[r["ranks"].index(1)])
        worst.append(scores[r["ranks"].index(max(r["ranks"]))])
    assert sum(best) / len(best) > sum(worst) / len(worst) + 0.4


def test_overlays_and_stats(tiny_data: Path) -> None:
    stats = json.loads((tiny_data / "stats.json").read_text())
    kinds = Counter(g["kind"] for g in read_jsonl(tiny_data / "gold.jsonl") if not g["id"].startswith("hld-"))
    assert stats["overlays"] == {"harmful": kinds["harmful"], "false_premise": kinds["false_premise"]}
    assert kinds["harmful"] > 0 and kinds["false_premise"] > 0
    assert sum(stats["k_distribution"].values()) == stats["records"][COMPARISONS]
    splits = stats["categories_by_split"][PROMPTS]
    assert sum(sum(v.values()) for v in splits.values()) == stats["records"][PROMPTS]
    assert set().union(*(v.keys() for v in splits.values())) <= set(SPLITS)


def test_labeler_agreement_is_the_papers_at_default_scale(tmp_path: Path) -> None:
    """Measured with two fresh simulated labelers at the default scale: 0.73 +- 0.03."""
    from components.params import load_params

    stats = run_generate(load_params(ROOT / "params.yaml", ["data.corpus_docs=10"]), tmp_path / "data")
    assert abs(stats["labeler_agreement"] - 0.73) <= 0.03, stats["labeler_agreement"]


def test_same_params_give_identical_bytes_whatever_the_hash_seed(tmp_path: Path, tiny_data: Path) -> None:
    """A fresh process with another PYTHONHASHSEED writes the same bytes (no set-order leaks)."""
    out = tmp_path / "again"
    env = {**tool_env(), "PYTHONHASHSEED": "12345"}
    cmd = [sys.executable, "-m", "components.cli", "data", "generate", "--out", str(out), "--profile", str(TINY)]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
    for name in (*FILES, CORPUS, "gold.jsonl", "stats.json"):
        assert (out / name).read_bytes() == (tiny_data / name).read_bytes(), name


def test_another_seed_gives_another_world(tmp_path: Path, tiny_params: Params, tiny_data: Path) -> None:
    other = tiny_params.model_copy(update={"data": tiny_params.data.model_copy(update={"seed": 1})})
    run_generate(other, tmp_path / "data")
    assert (tmp_path / "data" / PROMPTS).read_bytes() != (tiny_data / PROMPTS).read_bytes()


def test_a_scale_beyond_the_world_fails_clearly(tmp_path: Path, tiny_params: Params, monkeypatch) -> None:
    from components.world import generate

    one_prompt = generate.BUILDERS["Summarization"][0](generate.build_world(0), phrasing.Say(random.Random(0)))
    monkeypatch.setattr(generate, "file_sizes", lambda scale, factor: {DEMONSTRATIONS: 0, COMPARISONS: 0, PROMPTS: 100})
    monkeypatch.setattr(generate, "BUILDERS", {**generate.BUILDERS, "Summarization": [lambda w, r: one_prompt]})
    with pytest.raises(ValueError, match="ran out of unique"):
        run_generate(tiny_params, tmp_path / "data")
    assert not (tmp_path / "data").exists(), "nothing half-written"


@pytest.mark.skipif(not os.environ.get("INSTRUCTFLOW_SLOW"), reason="scale 1.0 takes ~1 min; set INSTRUCTFLOW_SLOW=1")
def test_full_scale_world_has_enough_unique_prompts(tmp_path: Path) -> None:
    from components.params import load_params

    stats = run_generate(
        load_params(ROOT / "params.yaml", ["data.scale=1.0", "data.corpus_docs=10"]), tmp_path / "data"
    )
    assert stats["records"][PROMPTS] == 50525
