"""The LLM judge's mechanics: both orders, parsing, ties; and evaluation with a local judge folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from components.eval import llm_judge
from components.eval.llm_judge import judge_pairs, parse
from components.models.model import load_tokenizer
from components.params import Params
from components.stages import STAGES

CONVERSATIONS = [[{"role": "user", "content": f"Question {i}?"}] for i in range(3)]


@pytest.mark.parametrize(
    ("reply", "value"),
    [("A", 1.0), ("b.", 0.0), ("Tie", 0.5), ("Answer B is better", 0.0), (" tie, both fine", 0.5), ("no idea", None)],
)
def test_the_first_verdict_word_is_the_verdict(reply: str, value: float | None) -> None:
    assert parse(reply) == value


def scripted(replies: list[str], asked: list[list[int]]):
    def answer_ids(model, tok, prompts, max_new_tokens):
        asked.extend(prompts)
        return replies[: len(prompts)]

    return answer_ids


def test_a_judge_that_always_says_a_is_cancelled_by_asking_in_both_orders(
    trained_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tok = load_tokenizer(trained_root / "artifacts" / "models" / "base")
    asked: list[list[int]] = []
    monkeypatch.setattr(llm_judge, "answer_ids", scripted(["A"] * 4, asked))
    verdicts = judge_pairs(None, tok, "{prompt} 1:{answer_a} 2:{answer_b}", CONVERSATIONS, ["x", "y", "z"],
                           ["x", "w", "v"], 4)  # fmt: skip
    assert verdicts.preferences == [0.5, 0.5, 0.5]  # the same text is a tie without asking; the others cancel
    assert len(asked) == 4 and verdicts.replies == 4 and verdicts.unparsed == 0
    shown = [tok.decode(ids) for ids in asked]
    assert "1:y 2:w" in shown[0] and "1:w 2:y" in shown[2]  # each pair in both orders


def test_a_judge_that_knows_which_answer_is_better_says_so_in_both_orders(
    trained_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tok = load_tokenizer(trained_root / "artifacts" / "models" / "base")
    # prompt 0: first better in both orders; prompt 1: ties once, unparsed once
    monkeypatch.setattr(llm_judge, "answer_ids", scripted(["A", "tie", "B", "???"], []))
    verdicts = judge_pairs(
        None, tok, "{prompt}|{answer_a}|{answer_b}", CONVERSATIONS[:2], ["good", "p"], ["bad", "q"], 4
    )
    assert verdicts.preferences == [1.0, 0.5] and verdicts.unparsed == 1


def test_evaluation_with_a_local_judge_folder_reports_the_llm_judge(
    ppo_root: Path, tiny_params: Params, tmp_path: Path
) -> None:
    root = tmp_path / "project"
    shutil.copytree(ppo_root / "data", root / "data")
    shutil.copytree(ppo_root / "artifacts", root / "artifacts", ignore=shutil.ignore_patterns("evaluation"))
    judge = str(ppo_root / "artifacts" / "models" / "base")  # any local causal LM folder will do
    params = tiny_params.model_copy(update={"evaluate": tiny_params.evaluate.model_copy(update={"judge_model": judge})})
    evaluation = STAGES["evaluate"].run(params, root)
    llm = evaluation["judges"]["llm"]
    assert list(evaluation["judges"]) == ["gold", "llm", "judge_rm", "training_rm"]
    changed = round(evaluation["changed_vs_sft"]["ppo"] * evaluation["prompts"])
    changed_base = round(evaluation["changed_vs_sft"]["base"] * evaluation["prompts"])
    assert llm["replies"] == 2 * (changed + changed_base)  # both orders of every pair that differs
    for rate in llm["win_rate_vs_sft"].values():
        assert rate["low"] <= rate["value"] <= rate["high"]
    assert "agreement_with_gold" in llm and isinstance(llm["orders_like_gold"], bool)


def test_a_judge_folder_that_is_not_a_model_stops_evaluation_before_any_answer(
    ppo_root: Path, tiny_params: Params, tmp_path: Path
) -> None:
    from components.errors import StageError

    update = {"judge_model": str(tmp_path / "no-such-model")}
    params = tiny_params.model_copy(update={"evaluate": tiny_params.evaluate.model_copy(update=update)})
    shutil.copytree(ppo_root / "artifacts" / "metrics", tmp_path / "artifacts" / "metrics")
    with pytest.raises(StageError, match=r"evaluate.judge_model: .*no-such-model is not a local Hugging Face model"):
        STAGES["evaluate"].run(params, tmp_path)
