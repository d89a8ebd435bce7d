"""The one list of pipeline stages: what each reads, writes and which params it uses.

`dvc.yaml`, the CLI (`instructflow stage NAME`) and the flows all follow this table;
tests/test_dvc.py checks dvc.yaml against it. A body is a thin call into its component;
components import torch, so each body imports its component when it runs, and reading the
table (the CLI's help, the flows, the dvc.yaml test) stays quick.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from components.data.io import atomic_path, write_json
from components.data.schema import COMPARISONS, JUDGE
from components.errors import StageError
from components.params import Params
from components.paths import (
    CHAMPION_DOWNLOAD,
    CHECKPOINTS,
    DATA,
    EVALUATION,
    METRICS,
    MODELS,
    PEOPLE,
    PLOTS,
    ROUNDS,
    SPLITS_DIR,
    VALIDATION_DOCS,
    final_root,
    last_sft_epoch,
    selected_sft,
)
from components.tracking import Tracker, is_main_process, stage_run

NOT_TRAINED = "NOT_TRAINED.txt"  # in a model folder that holds no model, with the reason

Body = Callable[[Params, Path, Tracker], dict | list]  # (params, project root, tracker) -> metrics
# local: runs here, no MLflow run of its own; tracked: an MLflow run; training: an MLflow run, under
# `accelerate launch` when it trains on more than one process (resources), and retried by the flow (it resumes).
Kind = Literal["local", "tracked", "training"]


@dataclass(frozen=True)
class Stage:
    name: str
    body: Body
    deps: tuple[str, ...]
    outs: tuple[str, ...]
    params: tuple[str, ...]  # params.yaml sections
    kind: Kind = "local"
    watches: tuple[str, ...] = ()  # read when present, not DVC deps: the flow's cache key sees them (people's labels)
    # Whether the outputs on disk are still this stage's for the inputs now, beyond existing: the flow
    # runs the stage again, whatever its cache says, when they are not (another command rewrote them).
    current: Callable[[Path], bool] | None = None

    @property
    def metrics(self) -> str:
        return str(METRICS / f"{self.name}.json")

    def run(self, params: Params, root: Path) -> dict:
        """Run the stage in this process and write its metrics file (main process only)."""
        if self.kind == "local":
            metrics = self.body(params, root, Tracker(active=False))
            write_json(root / self.metrics, metrics)
            return metrics
        from components.train.launch import inside_launch, launch

        if self.kind == "training" and params.resources.processes_for(self.name) > 1 and not inside_launch():
            return launch(self.name, params, root, root / self.metrics)
        tree = params.model_dump(by_alias=True)
        with stage_run(self.name, {k: tree[k] for k in self.params}, root) as tracker:
            metrics = self.body(params, root, tracker)
            tracker.log({k: v for k, v in metrics.items() if isinstance(v, int | float)}, step=tracker.last_step)
            if is_main_process():
                write_json(root / self.metrics, metrics)
                tracker.log_artifact(root / self.metrics)
        return metrics


def run_stage(name: str, params: Params, root: Path) -> dict:
    """What a round of the feedback loop calls to run a stage in its own project folder."""
    return STAGES[name].run(params, root)


def validate_body(params: Params, root: Path, tracker: Tracker) -> dict:
    from components.data.validate import validate_and_record

    report, metrics = validate_and_record(
        params.validate_, root / DATA, root / VALIDATION_DOCS, root / METRICS / "validate.json"
    )
    if not report.success:
        raise StageError(f"validation failed: nothing downstream runs on this data\n{report.format()}")
    return metrics


def validated_here(root: Path) -> bool:
    """validate.json records a validation of the data now in ROOT/data (`instructflow validate
    --data OTHER` writes it too, for OTHER)."""
    from components.data.validate import data_fingerprint

    path = root / METRICS / "validate.json"
    try:
        recorded = json.loads(path.read_text(encoding="utf-8")).get("data_fingerprint")
    except (OSError, ValueError, AttributeError):
        return False
    return recorded == data_fingerprint(root / DATA)


def prepare_body(params: Params, root: Path, tracker: Tracker) -> dict:
    from components.data.prepare import run_prepare
    from components.data.validate import require_valid

    require_valid(root / METRICS / "validate.json", root / DATA)
    return run_prepare(params.prepare, params.validate_, root / DATA, root / SPLITS_DIR)


def pretrain_body(params: Params, root: Path, tracker: Tracker) -> dict:
    from components.train.pretrain import run_pretrain

    return run_pretrain(params, root / SPLITS_DIR, root / MODELS / "base", root / CHECKPOINTS / "pretrain", tracker)


def sft_body(params: Params, root: Path, tracker: Tracker) -> dict:
    from components.train.sft import run_sft

    return run_sft(
        params, root / DATA, root / SPLITS_DIR, root / MODELS / "base", root / MODELS / "sft",
        root / CHECKPOINTS / "sft", tracker,
    )  # fmt: skip


def rm_body(params: Params, root: Path, tracker: Tracker) -> dict:
    from components.train.rm import run_rm

    init = last_sft_epoch(root) if params.rm.init == "sft" else root / MODELS / "base"
    return run_rm(
        params, root / DATA, root / SPLITS_DIR, init, root / MODELS / "rm", root / CHECKPOINTS / "rm", tracker
    )


def judge_rm_body(params: Params, root: Path, tracker: Tracker) -> dict:
    """The judge reward model: the judge split's comparisons, from the base model (never the policy's RM)."""
    from components.train.rm import run_rm

    out = root / MODELS / "judge_rm"
    source = root / SPLITS_DIR / JUDGE / COMPARISONS
    if not source.exists():
        reason = f"no judge split ({source} not found; prepare.judge is {params.prepare.judge})"
        with atomic_path(out) as tmp:  # DVC wants its output; evaluation reads the reason
            tmp.mkdir()
            (tmp / NOT_TRAINED).write_text(reason + "\n", encoding="utf-8")
        return {"trained": False, "reason": reason}
    metrics = run_rm(
        params, root / DATA, root / SPLITS_DIR, root / MODELS / "base", out, root / CHECKPOINTS / "judge_rm", tracker,
        split=JUDGE,
    )  # fmt: skip
    return {"trained": True, **metrics}


def require_rm_accuracy(params: Params, root: Path) -> None:
    """PPO against a reward model that orders held-out pairs at chance is wasted compute: stop first."""
    path = root / METRICS / "rm.json"
    if not path.exists():
        raise StageError(f"{path} not found: run the rm stage first")
    accuracy = json.loads(path.read_text(encoding="utf-8")).get("accuracy")
    if accuracy is None or accuracy < params.rm.min_accuracy:
        shown = "not measured (no held-out comparisons)" if accuracy is None else f"{accuracy:.3f}"
        raise StageError(
            f"the reward model's held-out accuracy is {shown}, below rm.min_accuracy {params.rm.min_accuracy} "
            f"({path}): PPO would optimise noise. More or cleaner comparisons, a larger base model, or "
            "other rm params raise it; lower rm.min_accuracy only to go on regardless"
        )


def select_sft_body(params: Params, root: Path, tracker: Tracker) -> dict:
    from components.train.select_sft import run_select_sft

    require_rm_accuracy(params, root)
    metrics = run_select_sft(
        params, root / DATA, root / SPLITS_DIR, root / MODELS / "sft", root / MODELS / "rm", tracker
    )
    metrics["selected_path"] = str(MODELS / "sft" / metrics["selected"])  # relative: the project may move
    return metrics


def ppo_body(params: Params, root: Path, tracker: Tracker) -> dict:
    from components.train.ppo import run_ppo

    require_rm_accuracy(params, root)
    init = root / MODELS / "ppo_init"  # a later round starts from the previous round's policy
    return run_ppo(
        params, root / DATA, root / SPLITS_DIR, selected_sft(root), root / MODELS / "rm", root / MODELS / "ppo",
        root / CHECKPOINTS / "ppo", root / PLOTS, tracker, init=init if init.exists() else None,
    )  # fmt: skip


def evaluate_body(params: Params, root: Path, tracker: Tracker) -> dict:
    from components.eval.evaluate import run_evaluate
    from components.registry import champion

    models = {name: (root / MODELS / name,) * 2 for name in ("base", "ppo")}
    models["sft"] = (selected_sft(root),) * 2
    current = champion(root, params.promotion, root / CHAMPION_DOWNLOAD)
    if current is not None:
        models["champion"] = (current.weights, current.tokenizer)
    models = {k: models[k] for k in ("base", "sft", "ppo", "champion") if k in models}
    reference = "champion" if current is not None else "sft"
    from components.loop.people import people_judge

    rm, judge_rm = root / MODELS / "rm", root / MODELS / "judge_rm"
    people = people_judge(root) if params.evaluate.people else None
    return run_evaluate(params, root, models, rm, reference, root / EVALUATION, tracker, judge_rm, people)


def rounds_body(params: Params, root: Path, tracker: Tracker) -> list[dict]:
    from components.loop.rounds import run_rounds

    return run_rounds(params, root, run_stage)


def register_body(params: Params, root: Path, tracker: Tracker) -> dict:
    from components.registry import register

    if not tracker.active:
        raise StageError("register needs MLflow tracking: unset INSTRUCTFLOW_TRACKING=off")
    final = final_root(root, params.pipeline.rounds)  # the last round's policy, reward model and evaluation
    path = final / METRICS / "evaluate.json"
    if not path.exists():
        raise StageError(f"{path} not found: run the evaluate (and rounds) stages first")
    evaluation = json.loads(path.read_text(encoding="utf-8"))
    result = register(params, root, final / MODELS / "ppo", final / MODELS / "rm", evaluation)
    decision = "promoted to champion" if result["promoted"] else "stays candidate"
    tracker.log_text("\n".join([f"{result['policy_uri']}: {decision}", *result["promotion_reasons"]]), "promotion.txt")
    return result


SPLITS, DATA_DIR, BASE, SFT, RM, JUDGE_RM, PPO = (
    str(SPLITS_DIR),
    str(DATA),
    *(str(MODELS / m) for m in ("base", "sft", "rm", "judge_rm", "ppo")),
)
SELECTED, EVALUATED, CORE = str(METRICS / "select_sft.json"), str(METRICS / "evaluate.json"), "components/train/core.py"
# One row per stage: name, body, deps (data, models and the code that makes the outputs), outs, params sections, kind.
# fmt: off
STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage("validate", validate_body, deps=(DATA_DIR, "components/data/validate.py"),
              outs=(str(VALIDATION_DOCS),), params=("validate",), current=validated_here),
        Stage("prepare", prepare_body, deps=(DATA_DIR, str(METRICS / "validate.json"), "components/data/prepare.py"),
              outs=(SPLITS,), params=("prepare", "validate")),
        Stage("pretrain", pretrain_body,
              deps=(SPLITS, "components/train/pretrain.py", "components/models/model.py", CORE),
              outs=(BASE,), params=("model", "pretrain", "resources"), kind="training"),
        Stage("sft", sft_body, deps=(SPLITS, BASE, "components/train/sft.py", CORE), outs=(SFT,),
              params=("sft", "resources"), kind="training"),
        Stage("rm", rm_body, deps=(SPLITS, SFT, BASE, "components/train/rm.py", CORE), outs=(RM,),
              params=("rm", "resources"), kind="training"),
        Stage("judge_rm", judge_rm_body, deps=(SPLITS, BASE, "components/train/rm.py", CORE), outs=(JUDGE_RM,),
              params=("rm", "resources"), kind="training"),
        # select_sft only runs models: one process, no retry
        Stage("select_sft", select_sft_body, deps=(SPLITS, SFT, RM, "components/train/select_sft.py"), outs=(),
              params=("select_sft",), kind="tracked"),
        Stage("ppo", ppo_body,
              deps=(SPLITS, SFT, RM, SELECTED, "components/train/ppo.py", "components/train/ppo_math.py"),
              outs=(PPO, str(PLOTS)), params=("ppo", "resources"), kind="training"),
        Stage("evaluate", evaluate_body,
              deps=(DATA_DIR, SPLITS, BASE, SFT, RM, JUDGE_RM, PPO, SELECTED, "components/eval/evaluate.py",
                    "components/eval/judges.py", "components/eval/truthfulqa.py", "components/eval/toxicity.py",
                    "components/eval/report.py"),
              outs=(str(EVALUATION),), params=("evaluate", "promotion"), kind="tracked", watches=(str(PEOPLE),)),
        Stage("rounds", rounds_body, deps=(DATA_DIR, RM, PPO, EVALUATED, "components/loop/rounds.py"),
              outs=(str(ROUNDS),), params=("pipeline",)),
        Stage("register", register_body,
              deps=(RM, PPO, EVALUATED, str(METRICS / "rounds.json"), "components/registry.py"), outs=(),
              params=("promotion", "pipeline"), kind="tracked"),
    )
}
# fmt: on
