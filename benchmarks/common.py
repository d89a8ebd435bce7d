"""Shared set-up for the benchmarks: the default tiny GPT and a timer. Each script prints one JSON line."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable

import torch

from components.params import Params, load_params


def benchmark_params() -> Params:
    """The project's params (the tests pass the tiny profile's to each main() instead)."""
    return load_params("params.yaml")


def default_model(kind: str = "lm", params: Params | None = None) -> tuple[torch.nn.Module, Params]:
    """The params' model shape, randomly initialised (speed does not depend on the weights)."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from components.models.model import tiny_config

    params = params or benchmark_params()
    torch.set_num_threads(params.resources.threads)
    config = tiny_config(params.model, params.model.vocab_size, pad=0, eos=1, bos=2)
    config.num_labels = 1
    torch.manual_seed(0)
    model = (AutoModelForSequenceClassification if kind == "rm" else AutoModelForCausalLM).from_config(config)
    return model.to("cuda" if torch.cuda.is_available() else "cpu"), params


def timed(step: Callable[[], int], warmup: int = 2, repeats: int = 10) -> tuple[float, int]:
    """(seconds, units) over `repeats` calls of step() after `warmup` calls; step returns units done."""
    for _ in range(warmup):
        step()
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    start, units = time.perf_counter(), 0
    for _ in range(repeats):
        units += step()
    sync()
    return time.perf_counter() - start, units


def report(name: str, value: float, unit: str, **extra: object) -> None:
    print(
        json.dumps(
            {
                "benchmark": name,
                "value": round(value, 2),
                "unit": unit,
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
                **extra,
            }
        )
    )
