"""The training core: `fit`, the loop of pretraining, SFT and the reward model, and `TrainingRun`,
the bookkeeping that loop shares with PPO's.

AdamW (betas 0.9/0.95), cosine decay to `min_lr_ratio` of the peak after a linear warmup,
gradient clipping and accumulation, mixed precision, all through accelerate so the same
loop runs on one CPU, two gloo processes or many GPUs. Full-state checkpoints (model,
optimizer, scheduler, RNG, step) make a stopped run end with the same weights as an
uninterrupted one. A trainer supplies the dataset, the collate function and the loss; PPO,
whose step is a rollout and several updates, runs its own loop on the same TrainingRun.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from components.errors import StageError
from components.hashing import file_hash
from components.params import ResourcesParams, TrainParams
from components.tracking import Tracker

# A tied output embedding is saved once and re-tied on load (the resume tests check it); accelerate
# warns about it at every checkpoint, which only buries the progress bars.
logging.getLogger("accelerate.utils.other").setLevel(logging.ERROR)
logger = logging.getLogger(__name__)

# loss_fn(model, batch) -> (loss to minimise, numbers to log; "tokens" and "examples" count throughput)
LossFn = Callable[[torch.nn.Module, Any], tuple[torch.Tensor, dict[str, float]]]
EpochEnd = Callable[[int, torch.nn.Module], dict[str, float] | None]


class Interrupted(RuntimeError):
    """Raised by `stop_after` to simulate a crash (tests of resume)."""


class Diverged(StageError):
    """A loss or a weight became NaN or infinite: the stage stops before it saves a broken model."""


def require_finite(value: float, what: str, section: str, lr: float) -> None:
    """Stop with the step and the knob to turn when VALUE (a loss) is NaN or infinite."""
    if not math.isfinite(value):
        raise Diverged(
            f"{section}: {what} is {value}: training diverged and nothing was saved. Lower {section}.lr "
            f"(now {lr:g}) or raise its warmup_steps; the last checkpoint, if any, is kept but resumes only "
            "with the same params"
        )


def require_finite_weights(model: torch.nn.Module, section: str, lr: float) -> None:
    """The last step's update can break the weights after a finite loss: check them before saving."""
    broken = next((name for name, w in model.named_parameters() if not torch.isfinite(w).all()), None)
    if broken is not None:
        require_finite(float("nan"), f"the weight {broken} after the last step", section, lr)


@dataclass
class FitResult:
    steps: int
    last_loss: float
    seconds: float
    tokens_per_second: float
    examples_per_second: float
    history: list[dict[str, float]] = field(default_factory=list)


def lr_lambda(step: int, total: int, warmup: int, floor: float) -> float:
    """Multiplier of the peak lr: linear warmup from 1/10, then cosine from 1 down to `floor`."""
    if warmup and step < warmup:
        return 0.1 + 0.9 * step / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def progress(total: int, initial: int, desc: str, disable: bool) -> tqdm:
    """A progress bar; in logs (no terminal) it writes a line every 10 s rather than every step."""
    interval = 0.1 if sys.stderr.isatty() else 10.0
    return tqdm(total=total, initial=initial, desc=desc, disable=disable, dynamic_ncols=True, mininterval=interval)


def adamw(model: torch.nn.Module, lr: float, weight_decay: float = 0.0) -> torch.optim.AdamW:
    """The optimizer of every trainer: AdamW with betas (0.9, 0.95), as GPT-3 and InstructGPT."""
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=weight_decay)


def make_accelerator(grad_accum: int, resources: ResourcesParams) -> Accelerator:
    torch.set_num_threads(resources.threads)
    check_gpus_per_process()
    return Accelerator(
        cpu=not torch.cuda.is_available(),
        mixed_precision=resources.mixed_precision,
        gradient_accumulation_steps=grad_accum,
    )


def check_gpus_per_process() -> None:
    """DDP on GPUs wants one GPU per process: say so, rather than a CUDA "invalid device ordinal"."""
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if torch.cuda.is_available() and processes > torch.cuda.device_count():
        raise StageError(
            f"resources.num_processes is {processes} but this machine has {torch.cuda.device_count()} GPU(s), "
            "and each process needs its own: lower resources.num_processes, or hide the GPUs "
            f"(CUDA_VISIBLE_DEVICES=) to run {processes} processes on the CPU"
        )


def epoch_order(n: int, lengths: Sequence[int] | None, batch_size: int, seed: int) -> list[int]:
    """A seeded shuffle; with lengths, each global batch holds examples of similar length.

    Grouping by length (as HF's LengthGroupedSampler does) cuts padding: shuffle, sort within
    windows of 32 batches, cut into batches, shuffle the batches. Batches are cut at the global
    batch size, so the same examples meet in a batch whatever the number of processes.
    """
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=g).tolist()
    if lengths is None:
        return order
    window = batch_size * 32
    batches = []
    for start in range(0, n, window):
        chunk = sorted(order[start : start + window], key=lambda i: -lengths[i])
        batches += [chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size)]
    return [i for b in torch.randperm(len(batches), generator=g).tolist() for i in batches[b]]


def epoch_loader(
    dataset: Sequence, lengths: Sequence[int] | None, params: TrainParams, epoch: int, collate: Callable, micro: int
) -> DataLoader:
    """This epoch's batches in a seeded order that a resumed run reproduces exactly."""
    order = epoch_order(len(dataset), lengths, params.batch_size, params.seed * 100_003 + epoch)
    # Its own generator: creating the iterator then draws no global RNG, which dropout must replay on resume.
    return DataLoader(
        Subset(dataset, order), batch_size=micro, shuffle=False, collate_fn=collate, generator=torch.Generator()
    )


def fresh() -> dict[str, Any]:
    """Where a run with no checkpoint starts (new lists each time: a run appends to its history)."""
    return {"step": 0, "epoch": 0, "batch": 0, "history": [], "counters": {}}


def checksums(folder: Path) -> dict[str, str]:
    """sha256 of every file a checkpoint holds but its own trainer_state.json."""
    files = sorted(f for f in folder.rglob("*") if f.is_file() and f.name != "trainer_state.json")
    return {str(f.relative_to(folder)): file_hash(f, "sha256").hexdigest() for f in files}


def read_state(path: Path) -> tuple[dict | None, str | None]:
    """A checkpoint's trainer_state.json, or None and what is wrong with it."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return None, f"trainer_state.json is unreadable ({type(e).__name__})"
    return (state, None) if isinstance(state, dict) else (None, "trainer_state.json is not an object")


def damage(folder: Path, state: dict) -> str | None:
    """What is wrong with a checkpoint's files against the checksums saved with them, or None.

    accelerate loads a truncated random state with only a log line, and a truncated model or
    optimizer file with a traceback on every later run: the files are checked before any is read.
    """
    saved = state.get("files")
    if not isinstance(saved, dict):
        return "no checksums (written by an older instructflow)"
    found = checksums(folder)
    for name, digest in saved.items():
        if name not in found:
            return f"{name} is missing"
        if found[name] != digest:
            return f"{name} does not match its checksum (truncated or overwritten)"
    return None


class Checkpoints:
    """Full training state under DIR/state, tagged with a fingerprint of what is being trained.

    trainer_state.json holds the step, the run's history and counters (so a resumed run reports
    the whole run) and a checksum of every other file; a checkpoint that fails them is set aside
    and the stage trains from its start, which ends in the same weights.
    """

    def __init__(self, folder: Path, fingerprint: str):
        self.folder, self.fingerprint = folder / "state", fingerprint

    def load(self, accelerator: Accelerator) -> dict[str, Any]:
        if not self.folder.exists():
            return fresh()
        state, problem = read_state(self.folder / "trainer_state.json")
        if state is not None and state.get("fingerprint") != self.fingerprint:  # another config or data
            self.discard(accelerator)
            return fresh()
        problem = problem or damage(self.folder, state)
        if problem:
            logger.warning("%s: checkpoint set aside, %s: training from the start", self.folder, problem)
            self.discard(accelerator)
            return fresh()
        accelerator.load_state(str(self.folder))
        return {k: state.get(k, default) for k, default in fresh().items()}

    def discard(self, accelerator: Accelerator) -> None:
        accelerator.wait_for_everyone()  # every process has read it before it goes
        if accelerator.is_main_process:
            shutil.rmtree(self.folder, ignore_errors=True)
        accelerator.wait_for_everyone()

    def save(self, accelerator: Accelerator, step: int, epoch: int, batch: int, **extra: Any) -> None:
        """Save the full state at STEP; EXTRA (history, counters) goes into trainer_state.json."""
        tmp = self.folder.with_name("state.tmp")
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)  # what a crash mid-save left
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp))  # every process writes into it (its own random state)
        # save_state does not wait for the others: renaming before they finish would race their
        # writes (FileExistsError, or a rank's random state left behind in a new state.tmp).
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            meta = {"fingerprint": self.fingerprint, "step": step, "epoch": epoch, "batch": batch, **extra}
            meta["files"] = checksums(tmp)
            (tmp / "trainer_state.json").write_text(json.dumps(meta), encoding="utf-8")
            shutil.rmtree(self.folder, ignore_errors=True)
            tmp.rename(self.folder)
        accelerator.wait_for_everyone()

    def clear(self, accelerator: Accelerator) -> None:
        """A finished run needs no resume point: the next run with the same inputs trains afresh."""
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            shutil.rmtree(self.folder, ignore_errors=True)


class TrainingRun:
    """What every training loop shares: the accelerator, lr schedules, full-state checkpoints that
    resume, the progress bar, logging to MLflow (and a history for plots) and the simulated crash."""

    def __init__(
        self,
        resources: ResourcesParams,
        run_dir: Path,
        fingerprint: str,
        total: int,
        tracker: Tracker,
        desc: str,
        grad_accum: int = 1,
        stop_after: int | None = None,
    ):
        self.accelerator = make_accelerator(grad_accum, resources)
        self.checkpoints = Checkpoints(run_dir, fingerprint)
        self.total, self.tracker, self.desc, self.stop_after = total, tracker, desc, stop_after
        self.history: list[dict[str, Any]] = []
        self.counters: dict[str, float] = {}  # tokens, examples: with the history, they go into checkpoints

    def schedule(self, optimizer: torch.optim.Optimizer, steps: int, warmup: int, floor: float) -> LambdaLR:
        """lr_lambda over STEPS optimizer steps (floor 1: constant after the warmup), saved with checkpoints.

        The schedule stays ours: accelerate would step a prepared one once per process per step.
        """
        return LambdaLR(optimizer, lambda s: lr_lambda(s, steps, warmup, floor))

    def resume(self, *stateful: Any) -> dict[str, int]:
        """Register STATEFUL objects for checkpointing, load the last matching checkpoint, start the bar."""
        for thing in stateful:
            self.accelerator.register_for_checkpointing(thing)
        start = self.checkpoints.load(self.accelerator)
        self.history, self.counters = start["history"], start["counters"]
        self.began = time.perf_counter() - self.counters.get("seconds", 0.0)  # a resumed run's seconds go on
        self.bar = progress(self.total, start["step"], self.desc, not self.accelerator.is_main_process)
        return start

    def advance(self, **postfix: str) -> None:
        """One step of the bar; the postfix is drawn at the bar's interval, not every step."""
        self.bar.update(1)
        self.bar.set_postfix(postfix, refresh=False)

    def record(self, step: int, row: dict[str, Any], prefix: str = "train/") -> None:
        self.history.append({"step": step, **row})
        self.tracker.log({f"{prefix}{k}": v for k, v in row.items() if v is not None}, step=step)

    def count(self, **numbers: float) -> None:
        for name, n in numbers.items():
            self.counters[name] = self.counters.get(name, 0) + n

    def save(self, step: int, epoch: int = 0, batch: int = 0) -> None:
        counters = {**self.counters, "seconds": self.elapsed()}
        self.checkpoints.save(self.accelerator, step, epoch, batch, history=self.history, counters=counters)

    def crash_if_asked(self, step: int) -> None:
        if self.stop_after is not None and step >= self.stop_after:
            self.bar.close()
            raise Interrupted(f"{self.desc}: stopped after step {step}")

    def elapsed(self) -> float:
        """Seconds of training, over every resumed part of the run."""
        return time.perf_counter() - self.began

    def finish(self) -> float:
        """Close the bar and drop the resume point (a finished run trains afresh); returns seconds."""
        self.bar.close()
        self.checkpoints.clear(self.accelerator)
        return self.elapsed()


def fit(
    model: torch.nn.Module,
    dataset: Sequence,
    collate: Callable,
    loss_fn: LossFn,
    params: TrainParams,
    resources: ResourcesParams,
    run_dir: Path,
    tracker: Tracker,
    fingerprint: str,
    on_epoch_end: EpochEnd | None = None,
    stop_after: int | None = None,
    desc: str = "train",
    lengths: Sequence[int] | None = None,
) -> tuple[torch.nn.Module, FitResult]:
    """Train `model` on `dataset` for params.epochs; resume from run_dir if a matching checkpoint exists.

    `lengths` (tokens per example) groups similar lengths into a batch to cut padding.
    """
    set_seed(params.seed)
    section = desc.split(" ")[0]  # the params section: "rm (judge)" trains with rm.*
    steps_per_epoch = math.ceil(len(dataset) / params.batch_size)
    total = steps_per_epoch * params.epochs
    run = TrainingRun(resources, run_dir, fingerprint, total, tracker, desc, params.grad_accum, stop_after)
    accelerator = run.accelerator
    # Process i takes the i-th of each N consecutive micro-batches, so N processes together see the
    # same global batch, in the same order, as one process does (and DDP averages their gradients).
    micro = params.batch_size // (params.grad_accum * accelerator.num_processes)
    if micro * params.grad_accum * accelerator.num_processes != params.batch_size:
        raise ValueError(
            f"batch_size {params.batch_size} must split evenly into grad_accum {params.grad_accum} "
            f"x {accelerator.num_processes} processes"
        )
    optimizer = adamw(model, params.lr, params.weight_decay)
    schedule = run.schedule(optimizer, total, params.warmup_steps, params.min_lr_ratio)
    model, optimizer = accelerator.prepare(model, optimizer)
    start = run.resume(schedule)
    step = start["step"]
    last_loss = next((h["loss"] for h in reversed(run.history) if "loss" in h), float("nan"))
    model.train()
    for epoch in range(start["epoch"], params.epochs):
        loader = accelerator.prepare(epoch_loader(dataset, lengths, params, epoch, collate, micro))
        skip = start["batch"] if epoch == start["epoch"] else 0
        batches = accelerator.skip_first_batches(loader, skip) if skip else loader
        for index, batch in enumerate(batches, start=skip):
            with accelerator.accumulate(model):
                loss, numbers = loss_fn(model, batch)
                accelerator.backward(loss)
                if accelerator.sync_gradients and params.grad_clip:
                    accelerator.clip_grad_norm_(model.parameters(), params.grad_clip)
                optimizer.step()
                if accelerator.sync_gradients:
                    schedule.step()
                optimizer.zero_grad()
            run.count(tokens=numbers.get("tokens", 0), examples=numbers.get("examples", 0))
            if not accelerator.sync_gradients:
                continue
            step += 1
            last_loss = accelerator.reduce(loss.detach(), reduction="mean").item()
            require_finite(last_loss, f"the loss at step {step} (epoch {epoch + 1})", section, params.lr)
            run.advance(loss=f"{last_loss:.3f}")
            if step % params.log_every == 0 or step == total:
                run.record(step, {"loss": last_loss, "lr": schedule.get_last_lr()[0], "epoch": epoch, **numbers})
            if params.checkpoint_every and step % params.checkpoint_every == 0:
                run.save(step, epoch, index + 1)
            run.crash_if_asked(step)
        if on_epoch_end is not None:  # before the checkpoint: a crash in it redoes it on resume
            model.eval()
            extra = on_epoch_end(epoch, accelerator.unwrap_model(model))
            model.train()
            if extra:
                run.record(step, {"epoch": epoch, **extra}, prefix="")
        run.save(step, epoch + 1, 0)
    require_finite_weights(model, section, params.lr)
    seconds = run.finish()
    n, tokens, examples = accelerator.num_processes, run.counters.get("tokens", 0), run.counters.get("examples", 0)
    result = FitResult(
        step, last_loss, seconds, tokens * n / max(seconds, 1e-9), examples * n / max(seconds, 1e-9), run.history
    )
    model.eval()
    return accelerator.unwrap_model(model), result
