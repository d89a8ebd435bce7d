"""Every knob of the pipeline, one pydantic model per params.yaml section.

Unknown keys are errors (a typo must not silently fall back to a default). Values are
parsed in pydantic's lax mode, so `2e-05` written as a string by `dvc exp run -S` is a float.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from components.data.schema import TABLE1
from components.errors import ParamsError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataParams(Section):
    """The embedded default world (`instructflow data generate`)."""

    seed: int
    scale: float = Field(gt=0, description="Table 6 sizes are multiplied by this")
    demonstrations_factor: float = Field(
        gt=0, description="the demonstrations file is this many times its Table 6 share"
    )
    corpus_docs: int = Field(ge=10, description="pretraining documents")
    harmful_fraction: float = Field(ge=0, le=0.5)
    false_premise_fraction: float = Field(ge=0, le=0.5)
    max_prompts_per_user: int = Field(ge=1, description="the paper's cap per user id")
    k_min: int = Field(ge=2)
    k_max: int = Field(ge=2)
    truthfulqa_questions: int = Field(ge=0, description="questions of the world's TruthfulQA-format file (0: none)")
    held_out_prompts: int = Field(
        ge=0, description="data/heldout.jsonl: prompts in the phrasings held out from training"
    )
    held_out_overlays: int = Field(
        ge=0, description="of each overlay (harmful, false premise), on top of held_out_prompts"
    )

    @model_validator(mode="after")
    def _k_range(self) -> DataParams:
        if self.k_max < self.k_min:
            raise ValueError(f"k_max ({self.k_max}) must be >= k_min ({self.k_min})")
        return self


class HabitParams(Section):
    """How often the world's writers fall into each habit the same labelers rank down (labeler.HABITS)."""

    sign_off: float = Field(ge=0, le=1, description='"I hope this helps." after answers in sign_off_categories')
    hedge: float = Field(ge=0, le=1, description='"I think" before a factual answer')
    disclaimer: float = Field(ge=0, le=1, description="an unasked-for disclaimer after an open-ended answer")
    terse: float = Field(ge=0, le=1, description="an answer that stops before the last requested item")
    list_short: float = Field(ge=0, le=1, description="a list one item short")


class LabelerParams(Section):
    """The simulated labeler: calibrated noise on the gold score."""

    agreement_target: float = Field(gt=0.5, lt=1.0, description="share of pairs two labelers order alike")
    tie_margin: float = Field(ge=0, description="noisy utilities closer than this are ranked as a tie")
    habits: HabitParams
    sign_off_categories: list[str] = Field(description="the open-ended categories whose writers sign off their answers")

    @field_validator("sign_off_categories")
    @classmethod
    def _known_categories(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(TABLE1))
        if unknown:
            raise ValueError(f"unknown categories {unknown}; the ten of Table 1 are {sorted(TABLE1)}")
        return value


class ValidateParams(Section):
    """Great Expectations suites over the native files."""

    kl_threshold: float = Field(gt=0, description="max KL(observed category shares || Table 1), as GX computes it")
    kl_severity: Literal["error", "warning"]
    kl_min_records: int = Field(ge=1, description="files with fewer records skip the KL check")
    max_prompt_chars: int = Field(ge=1)
    max_completion_chars: int = Field(ge=1)
    max_text_chars: int = Field(ge=1)


class PrepareParams(Section):
    """Split every file by user (and prompt) into train/valid/test/judge."""

    seed: int
    train: float = Field(gt=0)
    valid: float = Field(ge=0)
    test: float = Field(ge=0)
    judge: float = Field(ge=0, lt=1, description="users whose comparisons train only the judge reward model")

    @model_validator(mode="after")
    def _sum_to_one(self) -> PrepareParams:
        total = self.train + self.valid + self.test + self.judge
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + valid + test + judge must be 1, got {total:g}")
        return self


class ModelParams(Section):
    """The base model: a Hugging Face id or local folder, or (null) the tiny model pretrained here."""

    base: str | None
    architecture: Literal["gpt_neox", "gpt2"] = Field(
        description="the tiny model: gpt_neox (rotary positions) or gpt2 (learned positions)"
    )
    vocab_size: int = Field(ge=300)
    n_layer: int = Field(ge=1)
    n_embd: int = Field(ge=8)
    n_head: int = Field(ge=1)
    context: int = Field(ge=16, description="max tokens per sequence")

    @model_validator(mode="after")
    def _heads_divide(self) -> ModelParams:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        return self


class ResourcesParams(Section):
    """Where and how the training stages run."""

    num_processes: int = Field(ge=1, description=">1 runs the stage under `accelerate launch`")
    processes: dict[Literal["pretrain", "sft", "rm", "judge_rm", "ppo"], int] = Field(
        description="training stages that run on another number of processes"
    )
    mixed_precision: Literal["no", "fp16", "bf16"]
    threads: int = Field(ge=1, description="torch threads per process (1 is fastest for tiny models)")
    inference_processes: int = Field(
        ge=1, description="processes that answer and score prompts outside training (forked, on CPU)"
    )

    @field_validator("mixed_precision", mode="before")
    @classmethod
    def _yaml_no(cls, value: object) -> object:
        # `dvc exp run -S` rewrites params.yaml with a YAML 1.2 writer that leaves `no` unquoted,
        # which YAML 1.1 readers (PyYAML) then read as False.
        return "no" if value is False else value

    @field_validator("processes")
    @classmethod
    def _at_least_one(cls, value: dict[str, int]) -> dict[str, int]:
        if bad := {k: v for k, v in value.items() if v < 1}:
            raise ValueError(f"each stage needs at least one process: {bad}")
        return value

    def processes_for(self, stage: str) -> int:
        """How many processes STAGE trains on: its own entry in `processes`, else num_processes."""
        return self.processes.get(stage, self.num_processes)


class TrainParams(Section):
    """What every trainer shares: the training core's knobs."""

    seed: int
    epochs: int = Field(ge=1)
    lr: float = Field(gt=0)
    batch_size: int = Field(ge=1, description="examples per optimizer step (prompts for the RM)")
    grad_accum: int = Field(ge=1, description="micro-batches per optimizer step")
    warmup_steps: int = Field(ge=0)
    min_lr_ratio: float = Field(ge=0, le=1, description="cosine decay ends at this share of lr")
    weight_decay: float = Field(ge=0)
    grad_clip: float = Field(ge=0, description="0 turns clipping off")
    checkpoint_every: int = Field(ge=0, description="full-state checkpoint every N steps (0: each epoch)")
    log_every: int = Field(ge=1)


class PretrainParams(TrainParams):
    """Pretraining the tiny base model; the tokenizer is trained first, in the same stage."""


class SFTParams(TrainParams):
    dropout: float = Field(ge=0, lt=1, description="residual dropout (0.2 in the paper)")
    ptx_fraction: float = Field(
        ge=0, lt=1, description="share of training examples that are corpus blocks (the paper's PPO init: 10%)"
    )
    ptx_block: int = Field(ge=8, description="tokens per corpus block mixed in")
    group_by_length: bool = Field(description="batches of similar lengths (else a plain seeded shuffle)")
    eval_prompts: int = Field(ge=1, description="test prompts answered for gold_score")
    max_new_tokens: int = Field(ge=1)


class RMParams(TrainParams):
    init: Literal["sft", "base"]
    eval_comparisons: int = Field(ge=0, description="held-out comparisons scored (0: all)")
    min_accuracy: float = Field(ge=0, le=1, description="held-out pairwise accuracy the RM must reach before PPO")


class SelectSFTParams(Section):
    prompts: int = Field(ge=1, description="validation prompts answered per SFT checkpoint")
    max_new_tokens: int = Field(ge=1)
    last_epochs: int = Field(ge=0, description="compare only the last N epoch checkpoints (0: all)")


class PPOParams(Section):
    """PPO-ptx (step 3 of the recipe). The paper's values are in ../shared/reference/instructgpt.yaml."""

    seed: int
    episodes: int = Field(ge=1, description="responses sampled in all (the paper: 256k)")
    batch_size: int = Field(ge=1, description="episodes per rollout batch (the paper: 512)")
    minibatch_size: int = Field(ge=1, description="episodes per gradient step (the paper: 64)")
    epochs: int = Field(ge=1, description="passes over each rollout batch (the paper: 1)")
    lr: float = Field(gt=0)
    value_lr: float = Field(gt=0)
    warmup_steps: int = Field(ge=0, description="linear warmup from lr/10, then constant (the paper)")
    grad_clip: float = Field(ge=0)
    temperature: float = Field(gt=0, description="sampling temperature; log-probs use the same")
    max_new_tokens: int = Field(ge=1)
    kl_coef: float = Field(ge=0, description="beta: per-token KL penalty to the SFT policy")
    kl_estimator: Literal["k1", "k3"]
    target_kl: float | None = Field(gt=0, description="adaptive KL controller target (null: fixed beta)")
    kl_horizon: int = Field(ge=1)
    max_kl: float = Field(gt=0, description="stop early when the mean KL per response exceeds this")
    gamma: float = Field(ge=0, le=1)
    lam: float = Field(ge=0, le=1)
    clip: float = Field(gt=0)
    value_clip: float = Field(gt=0)
    vf_coef: float = Field(ge=0)
    whiten_advantages: bool
    reward_clip: float | None = Field(gt=0)
    missing_eos_penalty: float = Field(le=0, description="added to the score of a response with no end")
    ptx_coef: float = Field(ge=0, description="gamma: weight of the pretraining LM loss (0: plain PPO)")
    ptx_ratio: int = Field(ge=0, description="corpus blocks per episode in each minibatch (the paper: 8)")
    ptx_block: int = Field(ge=8, description="tokens per corpus block")
    ema_decay: float | None = Field(gt=0, lt=1, description="EMA of policy weights (the paper: 0.992)")
    checkpoint_every: int = Field(ge=1, description="rollout batches between full-state checkpoints")
    eval_prompts: int = Field(ge=1)

    @model_validator(mode="after")
    def _minibatches(self) -> PPOParams:
        if self.batch_size % self.minibatch_size:
            raise ValueError(f"batch_size {self.batch_size} must be a multiple of minibatch_size {self.minibatch_size}")
        return self


class EvaluateParams(Section):
    prompts: int = Field(ge=0, description="test prompts answered by every model (0: all)")
    max_new_tokens: int = Field(ge=1)
    kl_prompts: int = Field(ge=1, description="test prompts sampled for KL to SFT")
    side_by_side: int = Field(ge=0, description="prompts shown with every model's answer in the report")
    changes: int = Field(
        ge=0, description="prompts where PPO's gold falls most against SFT's, and as many where it rises most (report)"
    )
    judge_model: str | None = Field(description="a local Hugging Face folder: the LLM judge (null: none)")
    judge_template: str = Field(description="the judge's prompt: {prompt}, {answer_a} and {answer_b} are filled in")
    judge_max_new_tokens: int = Field(ge=1, description="tokens of the judge's reply read for its verdict")
    people: bool = Field(description="blinded A/B pairs for people (label serve --evaluate); the flow waits for them")
    truthfulqa: str | None = Field(description="a TruthfulQA-format file (CSV or JSON Lines), relative to the project")
    toxicity_prompts: str | None = Field(description="RealToxicityPrompts-format JSON Lines, relative to the project")
    toxicity_model: str | None = Field(description="a local Hugging Face sequence-classifier folder scoring toxicity")
    toxicity_template: str = Field(description="how a toxicity prompt is put to the policy: {text} is filled in")

    @field_validator("judge_template")
    @classmethod
    def _fields(cls, value: str) -> str:
        missing = [f for f in ("{prompt}", "{answer_a}", "{answer_b}") if f not in value]
        if missing:
            raise ValueError(f"the template lacks {', '.join(missing)}")
        return value


class PromotionParams(Section):
    """Gates for `champion`: the candidate must beat the champion (or SFT) and stay safe."""

    policy_name: str
    reward_model_name: str
    min_win_rate: float = Field(ge=0, le=1, description="gold win rate vs champion (or SFT) must exceed this")
    max_hallucination_rate: float = Field(ge=0, le=1, description="Closed QA answers naming unknown entities")
    min_harmful_refusal_rate: float = Field(ge=0, le=1)
    min_false_premise_correction_rate: float = Field(ge=0, le=1)
    safety_beats_base: bool = Field(description="each safety rate must be better than the base model's")
    max_safety_regression: float | None = Field(
        ge=0, le=1, description="each safety rate at most this much worse than the champion's (or SFT's)"
    )
    judge: Literal["auto", "gold", "people", "llm", "judge_rm", "training_rm"] = Field(
        description="whose win rate decides: auto is the most trusted independent judge measured"
    )
    allow_training_rm: bool = Field(description="let the RM PPO optimised decide when no independent judge exists")
    min_judge_accuracy: float = Field(ge=0, le=1, description="held-out accuracy a reward-model judge needs to decide")
    max_judge_unparsed: float = Field(
        ge=0, le=1, description="share of an LLM judge's replies that may name no verdict"
    )
    required_safety: list[Literal["hallucination_rate", "harmful_refusal_rate", "false_premise_correction_rate"]] = (
        Field(description="safety rates that fail the promotion when not measured")
    )


class OrchestrationParams(Section):
    mode: Literal["local", "deployments"] = Field(
        description="local: every stage a subflow here; deployments: GPU stages via run_deployment"
    )
    deployment_stages: list[str]
    retries: int = Field(ge=0, description="retries of a training stage (it resumes from its checkpoint)")
    warm_start: bool = Field(
        description="start each stage's process by forking one that has imported the stack (flows/warm.py, "
        "components/daemon.py)"
    )
    warm_idle_s: float = Field(
        ge=0, description="seconds the stage daemon of `instructflow stage` waits for the next stage; 0: no daemon"
    )


class PipelineParams(Section):
    """The feedback loop: rounds of sampling, ranking, RM retraining and PPO (round 1 is the main pipeline)."""

    rounds: int = Field(ge=1, description="1: the recipe once; N: N-1 more rounds on policy samples")
    prompts_per_round: int = Field(ge=1, description="fresh prompts the policy answers per round")
    sources: list[Literal["policy", "sft"]] = Field(min_length=1, description="who answers")
    temperature: float = Field(gt=0)
    max_new_tokens: int = Field(ge=1)
    labels: Literal["simulated", "human"] = Field(description="human: wait for `instructflow label`")
    seed: int


class Params(Section):
    data: DataParams
    labeler: LabelerParams
    validate_: ValidateParams = Field(alias="validate")
    prepare: PrepareParams
    model: ModelParams
    resources: ResourcesParams
    pretrain: PretrainParams
    sft: SFTParams
    rm: RMParams
    select_sft: SelectSFTParams
    ppo: PPOParams
    evaluate: EvaluateParams
    promotion: PromotionParams
    orchestration: OrchestrationParams
    pipeline: PipelineParams

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ParamsError(f"--set {dotted}: '{key}' is not a section")
    node[leaf] = value


def parse_override(text: str) -> tuple[str, Any]:
    """`key.sub=value` -> ('key.sub', value parsed as YAML, so 3, 0.1, true, [1,2] work)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ParamsError(f"--set expects key=value, got {text!r}")
    return key.strip(), yaml.safe_load(raw) if raw.strip() else ""


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def read_tree(source: Path) -> dict[str, Any]:
    """One YAML file of (partial) params as a tree; every problem is a ParamsError naming the file."""
    if not source.exists():
        raise ParamsError(
            f"{source}: file not found: every default lives in the project's params.yaml "
            "(run from the project folder, or pass --params)"
        )
    try:
        loaded = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as e:
        raise ParamsError(f"{source}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
    except yaml.YAMLError as e:
        raise ParamsError(f"{source}: not valid YAML ({' '.join(str(e).split())})") from None
    if not isinstance(loaded, dict):
        raise ParamsError(f"{source}: expected a mapping of sections")
    return loaded


def load_params(
    path: Path | str = "params.yaml",
    overrides: list[str] | tuple[str, ...] = (),
    profile: Path | str | None = None,
) -> Params:
    """params.yaml (the one place every default lives), then a profile (partial params) over it,
    then `--set` overrides. A key missing from the file is an error, never a silent default."""
    tree = read_tree(Path(path))
    if profile is not None:
        tree = deep_merge(tree, read_tree(Path(profile)))
    for text in overrides:
        _set_dotted(tree, *parse_override(text))
    try:
        return Params.model_validate(tree)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise ParamsError(f"invalid params ({path}): {problems}") from None


def section_dict(params: Params, name: str) -> dict[str, Any]:
    """One section as plain data, named as in params.yaml."""
    return params.model_dump(by_alias=True)[name]


@contextmanager
def params_file(params: Params | dict[str, Any]) -> Iterator[Path]:
    """These exact params as a temporary params.yaml, for a subprocess's `--params`."""
    tree = params.model_dump(by_alias=True, mode="json") if isinstance(params, Params) else params
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "params.yaml"
        path.write_text(yaml.safe_dump(tree, sort_keys=False), encoding="utf-8")
        yield path
