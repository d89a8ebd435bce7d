"""The `ppo` stage: PPO-ptx, step 3 of the recipe.

Policy and frozen reference start from the selected SFT checkpoint; the value model is a
copy of the reward model (its own weights, a value per token); the reward model is frozen
with its normalisation bias. Each iteration samples a batch of responses (left-padded
prompts, the KV cache, the params' temperature), scores them (RM score at the last token,
minus beta x per-token KL to the reference, a penalty without end-of-sequence), computes
GAE advantages and runs clipped PPO updates, adding ptx_coef x the LM loss on corpus blocks
(PPO-ptx; 0 gives plain PPO). The math is in ppo_math.py (log-probs of a response in
models/lm.py); checkpoints, schedules, progress and logging are the core's TrainingRun.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from components.data.io import atomic_path, read_jsonl
from components.data.prepare import corpus_texts
from components.eval.gold import gold_scores, load_gold
from components.eval.metrics import kl_to, mean, perplexity, win_rate
from components.eval.report import plot_ppo_curve
from components.hashing import values_digest
from components.models.generation import answer_ids, decode
from components.models.lm import collate_blocks, lm_step, pack, positions, response_logprobs, response_slice
from components.models.model import context_length, load_causal_lm, load_tokenizer, save_pretrained
from components.models.packing import Packing, pack_rows, packed_output, packs_exactly
from components.models.reward import RewardModel, load_scorer
from components.models.text import batch_tensors, prompt_ids, to_device
from components.params import Params, PPOParams
from components.tracking import Tracker
from components.train import ppo_math as pm
from components.train.core import TrainingRun, adamw, require_finite, require_finite_weights


class ValueModel(torch.nn.Module):
    """The reward model's backbone and scalar head applied at every position: a value per token."""

    def __init__(self, reward_model: torch.nn.Module):
        super().__init__()
        self.backbone = getattr(reward_model, reward_model.base_model_prefix)
        self.head = reward_model.score

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, packing: Packing | None = None
    ) -> torch.Tensor:
        if packing is not None:
            return packing.unpack(self.head(packed_output(self.backbone, packing)).squeeze(-1))
        hidden = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=positions(attention_mask)
        ).last_hidden_state
        return self.head(hidden).squeeze(-1)


class EMA:
    """Exponential moving average of the policy's weights; the saved policy when enabled."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(self.decay).add_(v.detach(), alpha=1 - self.decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.shadow = {k: v.clone() for k, v in state.items()}


@dataclass
class Rollout:
    ids: torch.Tensor  # (B, Q + T): left-padded prompt, right-padded response
    mask: torch.Tensor
    response_mask: torch.Tensor  # (B, T)
    query_width: int
    logp: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    stats: dict[str, float]
    texts: list[str]
    packed: bool = False  # every model packs exactly: forwards over packed rows (models/packing.py)


def packs(*models: torch.nn.Module | None) -> bool:
    """Whether each is a model whose packed forward is exact (a reward that is a plain function is not)."""
    return all(isinstance(m, torch.nn.Module) and packs_exactly(m) for m in models)


@torch.no_grad()
def rollout(policy, ref, value, reward_model, tok, prompts: list[list[int]], p: PPOParams, beta: float) -> Rollout:
    """Sample responses and turn them into advantages and returns (no gradients)."""
    # The sampler's log-probs are the old policy's: no second forward of the policy over the batch.
    sampled = decode(policy, tok, prompts, p.max_new_tokens, temperature=p.temperature)
    responses = sampled.responses
    device = next(policy.parameters()).device
    ids, mask, response_mask, q = batch_tensors(tok, prompts, responses)
    ids, mask, response_mask = ids.to(device), mask.to(device), response_mask.to(device)
    logp = sampled.logprobs.to(device) * response_mask
    packed = packs(policy, ref, getattr(value, "backbone", None))
    packing = pack_rows(ids, mask) if packed else None
    ref_logp = response_logprobs(ref, ids, mask, q, p.temperature, packing)
    values = response_slice(value(ids, mask, packing) if packing else value(ids, mask), q) * response_mask
    if packing and packs(getattr(reward_model, "backbone", None)):
        score = reward_model(ids, mask, packing)  # at each response's last token
    else:
        score = reward_model(ids, mask)
    has_eos = torch.tensor([tok.eos_token_id in r for r in responses], device=score.device)
    raw_score = score.clone()
    score = score + (~has_eos).float() * p.missing_eos_penalty
    if p.reward_clip:
        score = score.clamp(-p.reward_clip, p.reward_clip)
    kl = pm.kl_per_token(logp, ref_logp, p.kl_estimator) * response_mask
    rewards = pm.per_token_rewards(score, kl, response_mask, beta)
    advantages, returns = pm.gae(rewards, values, response_mask, p.gamma, p.lam)
    if p.whiten_advantages:
        advantages = pm.whiten(advantages, response_mask)
    stats = {
        "reward": raw_score.mean().item(),
        "score": score.mean().item(),
        "kl": kl.sum(1).mean().item(),
        "entropy": pm.masked_mean(sampled.entropy.to(device), response_mask).item(),
        "response_length": response_mask.sum(1).float().mean().item(),
        "no_eos": (~has_eos).float().mean().item(),
        "beta": beta,
    }
    texts = [tok.decode(r, skip_special_tokens=True).strip() for r in responses]
    return Rollout(ids, mask, response_mask, q, logp, values, advantages, returns, stats, texts, packed)


def corpus_batches(blocks: list[dict], size: int, seed: int) -> Iterator[dict] | None:
    """Endless seeded stream of corpus blocks for the ptx term; None when there are too few for a batch."""
    if size < 1 or len(blocks) < size:
        return None
    return endless_batches(blocks, size, seed)


def endless_batches(blocks: list[dict], size: int, seed: int) -> Iterator[dict]:
    """Batches of SIZE blocks, a fresh seeded shuffle each pass over them."""
    r = random.Random(seed)
    while True:
        order = list(range(len(blocks)))
        r.shuffle(order)
        for i in range(0, len(order) - size + 1, size):
            yield collate_blocks([blocks[j] for j in order[i : i + size]])


def prompt_batch(prompts: list[list[int]], p: PPOParams, iteration: int, rank: int, world: int) -> list[list[int]]:
    """This process's share of iteration's prompts: a seeded pass over the prompts, reshuffled each pass."""
    per_pass = len(prompts) // p.batch_size
    passes, index = divmod(iteration, max(per_pass, 1))
    order = list(range(len(prompts)))
    random.Random(p.seed * 7919 + passes).shuffle(order)
    picked = [order[(index * p.batch_size + i) % len(order)] for i in range(p.batch_size)]
    share = p.batch_size // world
    return [prompts[i] for i in picked[rank * share : (rank + 1) * share]]


def minibatch(batch: Rollout, idx: torch.Tensor) -> Rollout:
    """Rows IDX of the rollout without the columns that are padding in every one of them.

    Exact: masked means skip those columns and position ids ignore left padding. A minibatch's
    longest prompt and response are often shorter than the batch's, so its forwards are too.
    """
    mask, response_mask = batch.mask[idx], batch.response_mask[idx]
    unused = mask[:, : batch.query_width].sum(0) == 0
    start = int(unused.cumprod(0).sum())  # leading columns no row of IDX uses (never the prompts' last)
    used = response_mask.sum(0).nonzero()
    width = int(used.max()) + 1 if len(used) else 1
    cols, res = slice(start, batch.query_width + width), slice(0, width)
    rows = [batch.ids[idx][:, cols], mask[:, cols], response_mask[:, res], batch.query_width - start]
    per_token = [t[idx][:, res] for t in (batch.logp, batch.values, batch.advantages, batch.returns)]
    return Rollout(*rows, *per_token, stats={}, texts=[], packed=batch.packed)


def update(policy, value, optimizers, schedules, accelerator, batch: Rollout, ptx, p: PPOParams, ema) -> dict:
    """ppo.epochs passes over minibatches of the rollout: clipped policy + value loss, plus ptx."""
    n = batch.ids.shape[0]
    size = p.minibatch_size // accelerator.num_processes
    stats: dict[str, list[float]] = {}
    for _ in range(p.epochs):
        for idx in torch.randperm(n).split(size):
            mb = minibatch(batch, idx)
            packing = pack_rows(mb.ids, mb.mask) if mb.packed else None
            logp = response_logprobs(policy, mb.ids, mb.mask, mb.query_width, p.temperature, packing)
            pg, pg_stats = pm.policy_loss(logp, mb.logp, mb.advantages, mb.response_mask, p.clip)
            v = response_slice(value(mb.ids, mb.mask, packing), mb.query_width)
            vf, vf_stats = pm.value_loss(v, mb.values, mb.returns, mb.response_mask, p.value_clip)
            loss = pg + p.vf_coef * vf
            ptx_loss = torch.zeros(())
            if p.ptx_coef and ptx is not None:
                ptx_loss, _ = lm_step(policy, to_device(next(ptx), policy))
                loss = loss + p.ptx_coef * ptx_loss
            if not torch.isfinite(loss):
                what = f"the loss (policy {pg.item():g}, value {vf.item():g}, ptx {ptx_loss.item():g})"
                require_finite(loss.item(), what, "ppo", p.lr)
            accelerator.backward(loss)
            if p.grad_clip:
                accelerator.clip_grad_norm_(policy.parameters(), p.grad_clip)
                accelerator.clip_grad_norm_(value.parameters(), p.grad_clip)
            for opt, sched in zip(optimizers, schedules, strict=True):
                opt.step()
                sched.step()
                opt.zero_grad()
            if ema is not None:
                ema.update(accelerator.unwrap_model(policy))
            for k, val in {"policy_loss": pg, "value_loss": vf, "ptx_loss": ptx_loss, **pg_stats, **vf_stats}.items():
                stats.setdefault(k, []).append(float(val.detach()))
    return {k: sum(v) / len(v) for k, v in stats.items()}


def load_models(sft: Path, rm: Path, p: PPOParams, init: Path | None = None):
    policy = load_causal_lm(init or sft)
    ref = load_causal_lm(sft).eval().requires_grad_(False)
    rm_hf = load_scorer(rm)
    value = ValueModel(copy.deepcopy(rm_hf))
    reward_model = RewardModel(rm_hf).eval().requires_grad_(False)
    return policy, ref, value, reward_model


Reward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (ids, mask) of whole rows -> one score per row


def run_ppo(
    params: Params,
    data: Path,
    splits: Path,
    sft: Path,
    rm: Path,
    out: Path,
    run_dir: Path,
    plots: Path,
    tracker: Tracker,
    stop_after: int | None = None,
    init: Path | None = None,
    reward: Reward | None = None,
) -> dict:
    """PPO from INIT (default: the SFT policy; later rounds pass the previous round's policy), reference SFT.

    REWARD is what PPO maximises: the reward model at RM unless given (a diagnosis may pass another,
    such as the world's gold grader). The value model starts from the reward model at RM either way.
    """
    p = params.ppo
    torch.manual_seed(p.seed)
    tok = load_tokenizer(sft)
    policy, ref, value, reward_model = load_models(sft, rm, p, init)
    context = context_length(policy.config, params.model.context)
    records = read_jsonl(splits / "train" / "prompts.jsonl")
    train = [prompt_ids(tok, r["messages"])[-(context - p.max_new_tokens) :] for r in records]
    blocks = pack(corpus_texts(splits, "train"), tok, p.ptx_block)
    iterations = max(1, p.episodes // p.batch_size)
    fingerprint = values_digest(p, train, sft, rm, init)
    run = TrainingRun(params.resources, run_dir, fingerprint, iterations, tracker, "ppo", stop_after=stop_after)
    accelerator = run.accelerator
    optimizers = [adamw(policy, p.lr), adamw(value, p.value_lr)]
    updates = iterations * (p.batch_size // p.minibatch_size) * p.epochs
    # The paper's PPO lr: linear warmup from a tenth, then constant (a floor of 1 is no decay).
    schedules = [run.schedule(o, updates, p.warmup_steps, floor=1.0) for o in optimizers]
    policy, value, *optimizers = accelerator.prepare(policy, value, *optimizers)
    ref, reward_model = ref.to(accelerator.device), reward_model.to(accelerator.device)
    controller = pm.AdaptiveKL(p.kl_coef, p.target_kl, p.kl_horizon)
    ema = EMA(accelerator.unwrap_model(policy), p.ema_decay) if p.ema_decay else None
    start = run.resume(*schedules, controller, *([ema] if ema else []))["step"]
    ptx = corpus_batches(blocks, (p.minibatch_size // accelerator.num_processes) * p.ptx_ratio, p.seed)
    for _ in range(start * (p.batch_size // p.minibatch_size) * p.epochs if ptx else 0):
        next(ptx)  # a resumed run continues the corpus stream where it stopped
    gold = load_gold(data)
    judge = reward if reward is not None else reward_model
    rank, world = accelerator.process_index, accelerator.num_processes
    stopped = None
    for it in range(start, iterations):
        prompts = prompt_batch(train, p, it, rank, world)
        unwrapped = accelerator.unwrap_model(policy), accelerator.unwrap_model(value)
        batch = rollout(unwrapped[0], ref, unwrapped[1], judge, tok, prompts, p, controller.beta)
        policy.train(), value.train()  # dropout is 0 in all four models
        row = {**batch.stats, **update(policy, value, optimizers, schedules, accelerator, batch, ptx, p, ema)}
        policy.eval(), value.eval()
        if gold is not None:  # the world's grader watches; it never trains
            picked = [records[i] for i in prompt_batch(list(range(len(train))), p, it, rank, world)]
            row["gold_score"] = mean(gold_scores(gold, picked, batch.texts))
        controller.update(row["kl"], p.batch_size)
        row["episodes"] = (it + 1) * p.batch_size
        run.record(it + 1, row)
        run.advance(reward=f"{row['reward']:.2f}", kl=f"{row['kl']:.2f}")
        if (it + 1) % p.checkpoint_every == 0 or it + 1 == iterations:
            run.save(it + 1)
        if row["kl"] > p.max_kl:
            stopped = f"stopped early at iteration {it + 1}: KL {row['kl']:.2f} > ppo.max_kl {p.max_kl}"
            run.bar.write(stopped)
            break
        run.crash_if_asked(it + 1)
    final = accelerator.unwrap_model(policy)
    if ema is not None:
        final.load_state_dict(ema.shadow)
    require_finite_weights(final, "ppo", p.lr)
    history, seconds = run.history, run.elapsed()
    summary = evaluate_policy(final, ref, tok, data, splits, gold, p, context, params.resources.inference_processes)
    # The model and its curves are published together, after everything that can fail: a failure
    # leaves the last run's outputs (and this run's checkpoint, which a re-run resumes from).
    if accelerator.is_main_process:
        with atomic_path(plots) as new_plots, atomic_path(out) as new_model:
            new_plots.mkdir()
            if history:
                write_history(history, new_plots)
            save_pretrained(final, tok, new_model)
        if history:
            tracker.log_artifact(plots / CURVE, "plots")
    run.finish()
    return {**summary, **training_summary(history, seconds, stopped, p)}


CURVE = "ppo_reward_vs_kl.png"


def write_history(history: list[dict], plots: Path) -> None:
    """The per-batch rows as JSON (`dvc plots`) and the training curves as a PNG."""
    plot_ppo_curve(history, plots / CURVE)
    (plots / "ppo_history.json").write_text(json.dumps(history, indent=1))


def training_summary(history: list[dict], seconds: float, stopped: str | None, p: PPOParams) -> dict:
    episodes = len(history) * p.batch_size
    return {
        "reward": history[-1]["reward"] if history else None,
        "train_gold_score": history[-1].get("gold_score") if history else None,
        "kl": history[-1]["kl"] if history else None,
        "episodes": episodes,
        "episodes_per_second": episodes / max(seconds, 1e-9),
        "seconds": seconds,
        "stopped_early": stopped,
    }


def evaluate_policy(
    policy, sft, tok, data: Path, splits: Path, gold, p: PPOParams, context: int, processes: int = 1
) -> dict:
    """Win rate against SFT under the gold grader, KL to SFT, and the alignment tax (corpus perplexity)."""
    test = read_jsonl(splits / "test" / "prompts.jsonl")[: p.eval_prompts]
    prompts = [prompt_ids(tok, r["messages"])[-(context - p.max_new_tokens) :] for r in test]
    ppo_answers = answer_ids(policy, tok, prompts, p.max_new_tokens, processes=processes)
    sft_answers = answer_ids(sft, tok, prompts, p.max_new_tokens, processes=processes)
    ppo_gold, sft_gold = gold_scores(gold, test, ppo_answers), gold_scores(gold, test, sft_answers)
    held_out = pack(corpus_texts(splits, "valid"), tok, context)
    return {
        "win_rate_vs_sft": win_rate(ppo_gold, sft_gold) if ppo_gold else None,
        "gold_score": sum(ppo_gold) / len(ppo_gold) if ppo_gold else None,
        "sft_gold_score": sum(sft_gold) / len(sft_gold) if sft_gold else None,
        "kl_to_sft": kl_to(policy, sft, tok, prompts[:64], p),
        "corpus_perplexity": perplexity(policy, held_out) if held_out else None,
        "sft_corpus_perplexity": perplexity(sft, held_out) if held_out else None,
        "eval_prompts": len(test),
    }
