"""The research scripts (research/) on the tiny profile: each part they measure with still works."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from components.data.io import read_jsonl
from components.data.schema import SPLITS
from components.models.model import load_tokenizer
from components.models.text import prompt_ids
from components.params import Params


def test_the_rm_diagnosis_reports_on_policy_accuracy_best_of_k_and_the_swap_probe(
    trained_root: Path, tiny_params: Params
) -> None:
    from research.rm_diagnose import diagnose

    models = trained_root / "artifacts" / "models"
    params = tiny_params.model_copy(deep=True)
    params.pipeline.max_new_tokens = 8
    result = diagnose(trained_root, models / "sft" / "epoch-02", models / "rm", params, prompts=6, k=3)
    assert result["prompts"] == 6 and result["k"] == 3
    rates = [result["best_of_k_by_rm_vs_greedy"], result["best_of_k_by_gold_vs_greedy"], *result["swap_probe"].values()]
    assert len(rates) == 5 and all(0.0 <= value <= 1.0 for value in rates)
    # the oracle picks the best sample, so it never does worse against greedy than the RM's pick
    assert result["best_of_k_by_gold_vs_greedy"] >= result["best_of_k_by_rm_vs_greedy"]
    # every pair with unequal gold falls in exactly one category and one gap bin
    by_category = result["onpolicy_by_category"].values()
    by_gap = result["onpolicy_by_gold_gap"].values()
    assert sum(n for _, n in by_category) == sum(n for _, n in by_gap)
    counted = [acc for acc, n in [*by_category, *by_gap] if n]
    assert all(0.0 <= acc <= 1.0 for acc in counted)
    accuracy, pairs = result["repeat_probe"]
    assert pairs <= 6 and (accuracy is None or 0.0 <= accuracy <= 1.0)
    assert 0 <= result["greedy_repeat_slips"] <= 6
    assert result["win_rate_if_slips_fixed"] == 0.5 + result["greedy_repeat_slips"] / 12


def test_a_repeat_slip_names_something_more_often_than_the_ideal_does() -> None:
    from research.rm_diagnose import repeat_slip, with_repeat

    ideal = "Here are three objects: box, map and key."
    assert repeat_slip("Here are three objects: box, map and map.", ideal)
    assert not repeat_slip(ideal, ideal)
    story = "Finn found a red box. Finn kept the box."  # the ideal itself names Finn and the box twice
    assert not repeat_slip(story, story)
    assert repeat_slip("Finn found a red box. Finn kept the box and the box.", story)
    slip = with_repeat("I saw a dog, a cat and some apples today.", random.Random(0))
    assert slip is not None and repeat_slip(slip, "I saw a dog, a cat and some apples today.")
    assert with_repeat("Dear Finn, thank you for the pie.", random.Random(0)) is None  # nothing to confuse


def test_label_scale_adds_ranked_policy_samples_to_the_rm_data(
    trained_root: Path, tiny_data: Path, tiny_params: Params, tmp_path: Path
) -> None:
    from research.rm_label_scale import run, variant

    result = run(trained_root, tiny_data, tiny_params, sizes=[0, 10], workers=1, ppo=False, prompts=4)
    # ranked samples of the policy, one per prompt asked; prompts the labeler tied all through are
    # dropped (the tiny model's answers all score 0, so most of its rankings are ties)
    assert 0 < result["comparisons"] <= 10
    assert [row["onpolicy_comparisons"] for row in result["sizes"]] == [0, result["comparisons"]]
    for row in result["sizes"]:
        assert 0.0 <= row["rm_gold_accuracy"] <= 1.0 and 0.0 <= row["best_of_k_by_rm_vs_greedy"] <= 1.0
    added = [
        {"id": f"cmp-new-{i}", "user_id": f"user-{i}", "messages": [{"role": "user", "content": f"New {i}?"}]}
        for i in range(30)
    ]
    folder = variant(trained_root, tiny_data, tiny_params, added, tmp_path / "v")

    def comparisons(root: Path, split: str) -> list[dict]:
        path = root / "artifacts" / "data" / split / "comparisons.jsonl"
        return read_jsonl(path) if path.exists() else []

    splits = {s: comparisons(folder, s) for s in SPLITS}
    own = {s: comparisons(trained_root, s) for s in SPLITS}
    assert sum(len(splits[s]) - len(own[s]) for s in splits) == len(added)  # each new one in exactly one split
    assert len(read_jsonl(folder / "data" / "comparisons.jsonl")) == sum(len(own[s]) for s in own) + len(added)


def test_the_oracle_diagnosis_scores_rollout_rows_with_the_gold_grader(trained_root: Path) -> None:
    from components.data.io import read_jsonl
    from components.eval.gold import load_gold
    from components.models.text import completion_ids, pad_left
    from research.ppo_oracle import GoldReward

    tok = load_tokenizer(trained_root / "artifacts" / "models" / "base")
    gold = load_gold(trained_root / "data")
    records = read_jsonl(trained_root / "artifacts" / "data" / "train" / "prompts.jsonl")[:2]
    specs = {tuple(prompt_ids(tok, r["messages"])): gold[r["id"]] for r in records}
    answers = [gold[records[0]["id"]]["ideal"], "zzz"]
    rows = [prompt_ids(tok, r["messages"]) + completion_ids(tok, a) for r, a in zip(records, answers, strict=True)]
    ids, mask = pad_left(rows, tok.pad_token_id), pad_left([[1] * len(r) for r in rows], 0)
    scores = GoldReward(tok, specs, scale=3.0)(ids, mask)
    assert scores.tolist() == pytest.approx([3.0 * (1.0 - 0.5), 3.0 * (0.0 - 0.5)])
    with pytest.raises(KeyError, match="no known training prompt"):
        GoldReward(tok, {}, scale=3.0)(ids, mask)


def test_gold_by_kind_scores_each_model_on_the_same_test_prompts(trained_root: Path) -> None:
    from components.eval.evaluate import held_out_prompts
    from research.gold_by_kind import gold_by_kind

    models = trained_root / "artifacts" / "models"
    result = gold_by_kind(trained_root, [models / "base", models / "sft" / "epoch-02"], max_new_tokens=8, processes=1)
    assert set(result) == {str(models / "base"), str(models / "sft" / "epoch-02")}
    for row in result.values():
        counts = sum(n for *_, n in row["by_kind"].values())
        assert counts == len(held_out_prompts(trained_root / "artifacts" / "data" / "test")) > 0
        assert 0 <= row["all"] <= 1 and {"harmful", "false_premise", "Generation"} <= set(row["by_kind"])
        assert all(0 <= refused <= 1 for _, refused, _ in row["by_kind"].values())
        mean = sum(m * n for m, _, n in row["by_kind"].values()) / counts
        assert mean == pytest.approx(row["all"], abs=1e-3)
    held = gold_by_kind(trained_root, [models / "base"], max_new_tokens=4, processes=1, held_out=True)
    assert sum(n for *_, n in held[str(models / "base")]["by_kind"].values()) == len(
        read_jsonl(trained_root / "data" / "heldout.jsonl")
    )
