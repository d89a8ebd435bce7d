"""The math of the losses: K-choose-2 reward-model loss with ties, SFT prompt masking, the schedule."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from components.eval.metrics import pair_accuracy
from components.models.text import IGNORE, collate_lm, join, lm_loss
from components.train.core import epoch_order, lr_lambda
from components.train.rm import collate_comparisons, pairwise_loss, ranked_pairs


def test_ties_make_no_pair_and_the_better_rank_wins() -> None:
    assert ranked_pairs([1, 2, 2, 3]) == [(0, 1), (0, 2), (0, 3), (1, 3), (2, 3)]
    assert ranked_pairs([3, 1]) == [(1, 0)]
    assert ranked_pairs([1, 1]) == []


def test_rm_loss_matches_a_hand_computed_example_with_ties() -> None:
    # Prompt A: K=4, ranks [1, 2, 2, 3] -> 5 untied pairs. Prompt B: K=2, ranks [2, 1] -> 1 pair.
    batch = [
        {"sequences": [[5], [6], [7], [8]], "pairs": ranked_pairs([1, 2, 2, 3])},
        {"sequences": [[9], [10]], "pairs": ranked_pairs([2, 1])},
    ]
    collated = collate_comparisons(batch, pad_id=0)
    rewards = torch.tensor([2.0, 1.0, 0.5, -1.0, 0.3, 0.7])
    loss_a = sum(math.log1p(math.exp(-(rw - rl))) for rw, rl in [(2, 1), (2, 0.5), (2, -1), (1, -1), (0.5, -1)]) / 5
    loss_b = math.log1p(math.exp(-(0.7 - 0.3)))
    assert pairwise_loss(rewards, collated).item() == pytest.approx((loss_a + loss_b) / 2, rel=1e-6)
    # each completion is forwarded once: 6 sequences for 6 pairs
    assert collated["input_ids"].shape[0] == 6


def test_rm_gradient_pushes_winners_up_and_losers_down() -> None:
    collated = collate_comparisons([{"sequences": [[1], [2], [3]], "pairs": ranked_pairs([2, 1, 3])}], pad_id=0)
    rewards = torch.zeros(3, requires_grad=True)
    pairwise_loss(rewards, collated).backward()
    assert rewards.grad[1] < 0 < rewards.grad[2]  # rank 1 pushed up, rank 3 down


def test_pair_accuracy_skips_ties_in_the_reference() -> None:
    assert pair_accuracy([{}], [[3.0, 2.0, 1.0]], [[-1, -2, -2]]) == 1.0  # the tied pair is not counted
    assert pair_accuracy([{}], [[1.0, 2.0]], [[-1, -2]]) == 0.0


def test_sft_loss_ignores_prompt_tokens() -> None:
    ids, start = join([1, 2, 3, 4], [5, 6, 7], max_len=16)
    example = {"input_ids": ids, "labels": [IGNORE] * start + ids[start:]}
    batch = collate_lm([example, {"input_ids": [1, 5], "labels": [IGNORE, 5]}], pad_id=0)
    logits = torch.randn(2, batch["input_ids"].shape[1], 10, requires_grad=True)
    loss, n = lm_loss(logits, batch["labels"])
    assert n == 3 + 1  # completion tokens only; padding and prompts carry no loss
    loss.backward()
    # Position t predicts token t+1: positions whose next token is prompt or padding get no gradient.
    assert torch.all(logits.grad[0, :3] == 0) and torch.all(logits.grad[0, 3:6] != 0)
    assert torch.all(logits.grad[1, 1:] == 0)
    manual = F.cross_entropy(logits[0, 3:6], torch.tensor([5, 6, 7]), reduction="sum")
    manual = manual + F.cross_entropy(logits[1, 0:1], torch.tensor([5]), reduction="sum")
    assert loss.item() == pytest.approx(manual.item() / 4, rel=1e-5)


def test_long_prompts_lose_their_oldest_tokens_not_the_completion() -> None:
    ids, start = join(list(range(10)), [100, 101, 102], max_len=8)
    assert ids == [5, 6, 7, 8, 9, 100, 101, 102] and start == 5


def test_cosine_schedule_decays_to_ten_percent_after_warmup() -> None:
    assert lr_lambda(0, 100, 10, 0.1) == pytest.approx(0.1)
    assert lr_lambda(10, 100, 10, 0.1) == pytest.approx(1.0)
    assert lr_lambda(55, 100, 10, 0.1) == pytest.approx(0.55)
    assert lr_lambda(100, 100, 10, 0.1) == pytest.approx(0.1)
    assert lr_lambda(0, 100, 0, 0.1) == pytest.approx(1.0)


def test_length_grouped_order_is_a_seeded_permutation_with_similar_batches() -> None:
    lengths = [i % 50 for i in range(640)]
    order = epoch_order(640, lengths, 8, seed=3)
    assert sorted(order) == list(range(640)) and order == epoch_order(640, lengths, 8, seed=3)
    spread = [
        max(lengths[i] for i in order[k : k + 8]) - min(lengths[i] for i in order[k : k + 8]) for k in range(0, 640, 8)
    ]
    assert sum(spread) / len(spread) < 5  # versus ~40 for a plain shuffle
