"""PPO's arithmetic against hand-computed examples."""

from __future__ import annotations

import math

import pytest
import torch

from components.train import ppo_math as pm


def close(actual: torch.Tensor, expected: list) -> bool:
    return torch.allclose(actual, torch.tensor(expected), atol=1e-5)


def test_gae_matches_a_hand_computed_example() -> None:
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.5, 2.0, 0.0]])
    values = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.6, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])  # the second response ends after 2 tokens
    gamma, lam = 0.9, 0.8
    adv, ret = pm.gae(rewards, values, mask, gamma, lam)
    # row 0: deltas d2 = 1 - .3 = .7; d1 = 0 + .9*.3 - .2 = .07; d0 = .9*.2 - .1 = .08
    a2 = 0.7
    a1 = 0.07 + gamma * lam * a2
    a0 = 0.08 + gamma * lam * a1
    # row 1: the step after the end bootstraps 0: d1 = 2 - .6 = 1.4; d0 = .5 + .9*.6 - .4 = .64
    b1 = 1.4
    b0 = 0.64 + gamma * lam * b1
    assert close(adv, [[a0, a1, a2], [b0, b1, 0.0]])
    assert close(ret, [[a0 + 0.1, a1 + 0.2, a2 + 0.3], [b0 + 0.4, b1 + 0.6, 0.0]])


def test_gamma_one_lambda_one_gives_reward_to_go_minus_value() -> None:
    rewards, values = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[0.5, 0.5, 0.5]])
    adv, _ = pm.gae(rewards, values, torch.ones(1, 3), 1.0, 1.0)
    assert close(adv, [[6 - 0.5, 5 - 0.5, 3 - 0.5]])


def test_per_token_reward_is_kl_penalty_everywhere_plus_score_at_the_end() -> None:
    kl = torch.tensor([[0.1, 0.2, 0.3], [0.5, 0.5, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    rewards = pm.per_token_rewards(torch.tensor([2.0, -1.0]), kl, mask, beta=0.1)
    assert close(rewards, [[-0.01, -0.02, 2 - 0.03], [-0.05, -1 - 0.05, 0.0]])


def test_kl_estimators() -> None:
    logp, ref = torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)])
    assert pm.kl_per_token(logp, ref, "k1").item() == pytest.approx(math.log(2))
    assert pm.kl_per_token(logp, ref, "k3").item() == pytest.approx((0.5 - 1) + math.log(2))
    assert pm.kl_per_token(ref, ref, "k3").item() == 0.0
    with pytest.raises(ValueError, match="k1 or k3"):
        pm.kl_per_token(logp, ref, "k2")


def test_whitening_uses_real_tokens_only() -> None:
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    w = pm.whiten(x, mask)
    assert w[0, 3] == 0
    assert pm.masked_mean(w, mask).item() == pytest.approx(0, abs=1e-6)
    assert pm.masked_mean(w**2, mask).item() == pytest.approx(1, abs=1e-4)


def test_clipped_policy_loss() -> None:
    old = torch.log(torch.tensor([[0.5, 0.5]]))
    new = torch.log(torch.tensor([[0.8, 0.3]]))  # ratios 1.6 and 0.6
    adv, mask = torch.tensor([[1.0, -1.0]]), torch.ones(1, 2)
    loss, stats = pm.policy_loss(new, old, adv, mask, clip=0.2)
    # token 0: max(-1.6, -1.2) = -1.2 (clipped); token 1: max(0.6, 0.8) = 0.8 (clipped)
    assert loss.item() == pytest.approx((-1.2 + 0.8) / 2)
    assert stats["clipfrac"].item() == 1.0
    same, stats = pm.policy_loss(old, old, adv, mask, clip=0.2)
    assert same.item() == pytest.approx(0.0) and stats["clipfrac"].item() == 0.0


def test_clipped_value_loss() -> None:
    old, returns, mask = torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 1.0]]), torch.ones(1, 2)
    values = torch.tensor([[0.5, 2.0]])
    loss, stats = pm.value_loss(values, old, returns, mask, clip=0.2)
    # token 0: max((.5-1)^2, (.2-1)^2) = .64; token 1: max((2-1)^2, (.2-1)^2) = 1
    assert loss.item() == pytest.approx(0.5 * (0.64 + 1.0) / 2)
    assert stats["value_clipfrac"].item() == 0.5


def test_adaptive_kl_controller_moves_beta_towards_the_target() -> None:
    c = pm.AdaptiveKL(0.1, target=1.0, horizon=100)
    c.update(kl=3.0, episodes=10)
    assert c.beta == pytest.approx(0.1 * (1 + 0.2 * 0.1))
    c.update(kl=0.0, episodes=10)
    assert c.beta < 0.1 * 1.02
    fixed = pm.AdaptiveKL(0.1, target=None, horizon=100)
    fixed.update(kl=50.0, episodes=10)
    assert fixed.beta == 0.1
