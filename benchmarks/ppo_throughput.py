"""PPO throughput: episodes/s of rollouts (sampling + scoring) and of updates, timed apart.

Default model shape, randomly initialised policy, reference, value and reward models; 64
prompts of 40 tokens, up to 48 sampled tokens each (a random policy rarely ends early).

    python -m benchmarks.ppo_throughput         # one JSON line
"""

from __future__ import annotations

import copy
import random
import time

import torch
from transformers import AutoModelForSequenceClassification

from benchmarks.common import benchmark_params, report
from components.models.model import tiny_lm, train_tokenizer
from components.models.reward import RewardModel
from components.params import Params
from components.train.core import adamw, make_accelerator
from components.train.ppo import ValueModel, rollout, update
from components.world.corpus import corpus
from components.world.kb import build_world


def main(params: Params | None = None, repeats: int = 3, corpus_docs: int = 3000) -> None:
    params = params or benchmark_params()
    p = params.ppo.model_copy(update={"ptx_coef": 0.0})
    accelerator = make_accelerator(1, params.resources)
    texts = [d["text"] for d in corpus(build_world(0), random.Random(0), corpus_docs)]
    tok = train_tokenizer(texts, params.model.vocab_size)
    torch.manual_seed(0)
    policy = tiny_lm(tok, params.model)
    ref = copy.deepcopy(policy).requires_grad_(False)
    rm_config = copy.deepcopy(policy.config)
    rm_config.num_labels = 1
    rm = AutoModelForSequenceClassification.from_config(rm_config)
    value, reward_model = ValueModel(copy.deepcopy(rm)), RewardModel(rm).requires_grad_(False)
    optimizers = [adamw(policy, p.lr), adamw(value, p.value_lr)]
    schedules = [torch.optim.lr_scheduler.LambdaLR(o, lambda s: 1.0) for o in optimizers]
    policy, value, *optimizers = accelerator.prepare(policy, value, *optimizers)
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(10, len(tok), (40,), generator=g).tolist() for _ in range(p.batch_size)]
    rollout_s = update_s = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        batch = rollout(policy, ref, value, reward_model, tok, prompts, p, p.kl_coef)
        middle = time.perf_counter()
        update(policy, value, optimizers, schedules, accelerator, batch, None, p, None)
        rollout_s, update_s = rollout_s + middle - start, update_s + time.perf_counter() - middle
    episodes = repeats * p.batch_size
    report(
        "ppo_episodes_per_second",
        episodes / (rollout_s + update_s),
        "episodes/s",
        rollout_episodes_per_second=round(episodes / rollout_s, 2),
        update_episodes_per_second=round(episodes / update_s, 2),
        batch_size=p.batch_size,
        minibatch_size=p.minibatch_size,
        max_new_tokens=p.max_new_tokens,
        response_length=round(batch.stats["response_length"], 1),
        model=f"{params.model.n_layer}x{params.model.n_embd}",
    )


if __name__ == "__main__":
    main()
