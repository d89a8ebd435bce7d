"""Model FLOPs utilisation: achieved FLOP/s of pretraining, SFT and PPO's update against the matmul peak.

The peak is torch's own float32 matmul at the shapes of the model's linear layers (the best of
them), measured in the same process and thread count. Achieved FLOP/s counts the model's
matmuls only (PaLM's convention): per token forward 2 x 12 x n_layer x d^2 for the blocks,
2 x 2 x n_layer x d x T for attention scores and mixing, 2 x vocab x d for the output layer
where it runs; backward twice the forward.

    python -m benchmarks.mfu                         # the params' model shape
    python -m benchmarks.mfu --n-layer 6 --n-embd 384
    python -m benchmarks.mfu --processes 2           # two processes, DDP over gloo as the stages train

With two processes each takes half of every batch (as `resources.processes` 2 splits them) and
the gradients are all-reduced each step; the peak is then two matmul loops run at once, summed.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from benchmarks.common import benchmark_params, default_model, report, timed
from components.models.lm import positions
from components.models.text import lm_loss
from components.params import Params


def matmul_peak(tokens: int, d: int, vocab: int, repeats: int = 20) -> float:
    """Best FLOP/s of an (tokens x d) @ (d x out) matmul over the model's output widths."""
    best = 0.0
    for out in (d, 3 * d, 4 * d, vocab):
        a, b = torch.randn(tokens, d), torch.randn(d, out)
        torch.mm(a, b)
        start = time.perf_counter()
        for _ in range(repeats):
            torch.mm(a, b)
        best = max(best, 2 * tokens * d * out * repeats / (time.perf_counter() - start))
    return best


def forward_flops(n_layer: int, d: int, vocab: int, length: int, head_positions: int) -> float:
    """FLOPs of one sequence's forward: blocks and attention at every position, the output layer at some."""
    per_token = 2 * 12 * n_layer * d * d + 2 * 2 * n_layer * d * length
    return per_token * length + 2 * vocab * d * head_positions


def lm_train_step(model, batch: int, length: int, vocab: int, prompt: int = 0):
    """A training step on random tokens; the first PROMPT positions carry no loss (SFT masks the prompt)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (batch, length), generator=g)
    labels = ids.clone()
    labels[:, :prompt] = -100

    def step() -> int:
        loss, _ = lm_loss(model(input_ids=ids).logits, labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return 1

    return step


def ppo_update_step(policy, value, batch: int, query: int, response: int, vocab: int):
    """PPO's update on one minibatch: policy forward (output layer on response positions) and value forward."""
    params = list(policy.parameters()) + list(value.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-5, betas=(0.9, 0.95))
    ids = torch.randint(0, vocab, (batch, query + response), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)

    def step() -> int:
        logits = policy(
            input_ids=ids, attention_mask=mask, position_ids=positions(mask), logits_to_keep=response + 1
        ).logits
        values = value(input_ids=ids, attention_mask=mask).logits
        (logits.logsumexp(-1).mean() + values.mean()).backward()
        optimizer.step()
        optimizer.zero_grad()
        return 1

    return step


def cases(params: Params, world: int = 1) -> dict:
    """{case: (step, FLOPs of the whole step across the WORLD processes)}; each process takes 1/WORLD of a batch."""
    m, vocab = params.model, params.model.vocab_size
    lm, _ = default_model("lm", params)
    value, _ = default_model("rm", params)
    lm.train(), value.train()
    if world > 1:
        lm, value = torch.nn.parallel.DistributedDataParallel(lm), torch.nn.parallel.DistributedDataParallel(value)
    context, sft_length = m.context, 64
    ppo = params.ppo
    query, response = 40, ppo.max_new_tokens
    pretrain, sft, minibatch = (
        b // world for b in (params.pretrain.batch_size, params.sft.batch_size, ppo.minibatch_size)
    )
    return {
        # pretraining: blocks of the full context, loss everywhere
        "pretrain": (
            lm_train_step(lm, pretrain, context, vocab),
            pretrain * world * 3 * forward_flops(m.n_layer, m.n_embd, vocab, context, context),
        ),
        # SFT: a demonstration of ~64 tokens; the output layer runs everywhere (HF computes all logits)
        "sft": (
            lm_train_step(lm, sft, sft_length, vocab, prompt=sft_length // 2),
            sft * world * 3 * forward_flops(m.n_layer, m.n_embd, vocab, sft_length, sft_length),
        ),
        # PPO's update: policy with the output layer on the response, value model (its head is one number)
        "ppo_update": (
            ppo_update_step(lm, value, minibatch, query, response, vocab),
            minibatch
            * world
            * 3
            * (
                forward_flops(m.n_layer, m.n_embd, vocab, query + response, response + 1)
                + forward_flops(m.n_layer, m.n_embd, 0, query + response, 0)
            ),
        ),
    }


def measure(params: Params, repeats: int, world: int = 1) -> tuple[float, dict]:
    """The matmul peak (summed over the processes) and each case's achieved FLOP/s and MFU."""
    barrier = torch.distributed.barrier if world > 1 else (lambda: None)
    found = cases(params, world)
    barrier()
    peak = matmul_peak(1024, params.model.n_embd, params.model.vocab_size) * world  # each process's loop at once
    result = {}
    for name, (step, flops) in found.items():
        barrier()
        seconds, steps = timed(step, warmup=2, repeats=repeats)
        achieved = flops * steps / seconds
        result[name] = {"gflops": round(achieved / 1e9, 2), "mfu": round(achieved / peak, 3)}
    return peak, result


def rank_main(rank: int, params: Params, repeats: int, port: int, out: str) -> None:
    """One of two processes: join the gloo group, measure, and rank 0 writes what it measured."""
    import json

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)
    try:
        peak, result = measure(params, repeats, world=2)
        if rank == 0:
            with open(out, "w") as f:
                json.dump({"peak": peak, "result": result}, f)
    finally:
        torch.distributed.destroy_process_group()


def main(
    params: Params | None = None,
    repeats: int = 5,
    n_layer: int | None = None,
    n_embd: int | None = None,
    processes: int = 1,
) -> None:
    params = params or benchmark_params()
    shape = {k: v for k, v in {"n_layer": n_layer, "n_embd": n_embd}.items() if v}
    if n_embd:
        shape["n_head"] = max(1, n_embd // 64)
    params = params.model_copy(update={"model": params.model.model_copy(update=shape)})
    if processes == 1:
        peak, result = measure(params, repeats)
    else:
        peak, result = two_processes(params, repeats)
    m = params.model
    report(
        "model_flops_utilisation",
        result["sft"]["mfu"],
        "fraction of the matmul peak (sft)",
        peak_gflops=round(peak / 1e9, 2),
        model=f"{m.n_layer}x{m.n_embd}",
        processes=processes,
        **result,
    )


def two_processes(params: Params, repeats: int) -> tuple[float, dict]:
    import json
    import tempfile

    import torch.multiprocessing as mp

    from components.ports import free_port

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rank0.json")
        mp.spawn(rank_main, args=(params, repeats, free_port(), out), nprocs=2)
        with open(out) as f:
            found = json.load(f)
    return found["peak"], found["result"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-layer", type=int)
    parser.add_argument("--n-embd", type=int)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--processes", type=int, default=1, choices=(1, 2))
    args = parser.parse_args()
    main(repeats=args.repeats, n_layer=args.n_layer, n_embd=args.n_embd, processes=args.processes)
