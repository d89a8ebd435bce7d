"""Work split over forked processes: the same results in the same order, failures raised in the parent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from components.forks import ChildFailed, map_shares, usable
from components.params import Params


def pids_and_squares(share: list[int]) -> list[tuple[int, int]]:
    return [(os.getpid(), x * x) for x in share]


def test_shares_run_in_other_processes_and_come_back_in_order() -> None:
    out = map_shares(pids_and_squares, list(range(7)), 3)
    assert [square for _, square in out] == [x * x for x in range(7)]
    assert len({pid for pid, _ in out}) == 3 and out[0][0] == os.getpid()


def test_a_childs_error_is_raised_in_the_parent_with_its_message() -> None:
    def fails_in_child(share: list[int]) -> list[int]:
        if 1 in share:
            raise ValueError("bad item 1")
        return share

    with pytest.raises(ChildFailed, match="ValueError: bad item 1"):
        map_shares(fails_in_child, [0, 1], 2)


def test_a_child_that_dies_is_reported() -> None:
    def dies_in_child(share: list[int]) -> list[int]:
        if 1 in share:
            os._exit(3)
        return share

    with pytest.raises(ChildFailed, match="died before sending"):
        map_shares(dies_in_child, [0, 1], 2)


def test_no_fork_on_a_gpu() -> None:
    assert usable(2, "cuda") == 1 and usable(2, "cpu") == 2 and usable(0, "cpu") == 1


def test_greedy_answers_and_scores_are_the_same_over_two_processes(trained_root: Path) -> None:
    from components.eval.metrics import score
    from components.models.generation import answer
    from components.models.model import load_causal_lm, load_tokenizer
    from components.models.reward import load_reward_model

    folder = trained_root / "artifacts" / "models" / "sft" / "epoch-02"
    model, tok = load_causal_lm(folder), load_tokenizer(folder)
    rm, rm_tok = load_reward_model(trained_root / "artifacts" / "models" / "rm")
    texts = ("Hi", "Where does Alice live today?", "Why?", "Name three animals.", "Write a poem about a cup.")
    conversations = [[{"role": "user", "content": t}] for t in texts]
    one, two = answer(model, tok, conversations, 16), answer(model, tok, conversations, 16, processes=2)
    assert one == two
    scores = [score(rm, rm_tok, conversations, one, 96, processes=n) for n in (1, 2)]
    assert scores[0] == pytest.approx(scores[1], abs=1e-5)


def test_round_samples_do_not_depend_on_the_processes(trained_root: Path, tiny_params: Params) -> None:
    from components.data.io import read_jsonl
    from components.loop.samples import sample_answers

    prompts = read_jsonl(trained_root / "data" / "prompts.jsonl")[:130]  # three batches of up to 64
    folder = trained_root / "artifacts" / "models" / "sft" / "epoch-02"
    answers = []
    for n in (1, 2):
        params = tiny_params.model_copy(deep=True)
        params.resources.inference_processes = n
        answers.append(sample_answers([folder], prompts, params, 2))
    assert answers[0] == answers[1]
    assert all(len(a) >= tiny_params.data.k_min for a in answers[0])
