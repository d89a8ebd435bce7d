"""Every knob of the pipeline, one pydantic model per params.yaml section.

Unknown keys are errors (a typo must not silently fall back to a default). Values are
parsed in pydantic's lax mode, so `2e-05` written as a string by `dvc exp run -S` is a float.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataParams(Section):
    """The embedded default world (`instructflow data generate`)."""

    seed: int = 0
    scale: float = Field(0.05, gt=0, description="Table 6 sizes are multiplied by this")
    corpus_docs: int = Field(6000, ge=10, description="pretraining documents")
    harmful_fraction: float = Field(0.05, ge=0, le=0.5)
    false_premise_fraction: float = Field(0.05, ge=0, le=0.5)
    max_prompts_per_user: int = Field(200, ge=1, description="the paper's cap per user id")
    k_min: int = Field(4, ge=2)
    k_max: int = Field(9, ge=2)

    @model_validator(mode="after")
    def _k_range(self) -> DataParams:
        if self.k_max < self.k_min:
            raise ValueError(f"k_max ({self.k_max}) must be >= k_min ({self.k_min})")
        return self


class LabelerParams(Section):
    """The simulated labeler: calibrated noise on the gold score."""

    agreement_target: float = Field(0.73, gt=0.5, lt=1.0, description="share of pairs two labelers order alike")
    tie_margin: float = Field(0.01, ge=0, description="noisy utilities closer than this are ranked as a tie")


class ValidateParams(Section):
    """Great Expectations suites over the native files."""

    kl_threshold: float = Field(0.1, gt=0, description="max KL(observed category shares || Table 1), as GX computes it")
    kl_severity: Literal["error", "warning"] = "warning"
    kl_min_records: int = Field(200, ge=1, description="files with fewer records skip the KL check")
    max_prompt_chars: int = Field(8000, ge=1)
    max_completion_chars: int = Field(8000, ge=1)
    max_text_chars: int = Field(20000, ge=1)


class PrepareParams(Section):
    """Split every file by user_id into train/valid/test."""

    seed: int = 0
    train: float = Field(0.8, gt=0)
    valid: float = Field(0.1, ge=0)
    test: float = Field(0.1, ge=0)

    @model_validator(mode="after")
    def _sum_to_one(self) -> PrepareParams:
        total = self.train + self.valid + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + valid + test must be 1, got {total:g}")
        return self


class Params(Section):
    data: DataParams = DataParams()
    labeler: LabelerParams = LabelerParams()
    validate_: ValidateParams = Field(ValidateParams(), alias="validate")
    prepare: PrepareParams = PrepareParams()

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ParamsError(ValueError):
    """params.yaml (or an override) does not describe valid params."""


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


def load_params(
    path: Path | str | None = "params.yaml",
    overrides: list[str] | tuple[str, ...] = (),
    profile: Path | str | None = None,
) -> Params:
    """params.yaml (None: the defaults), then a profile (partial params) over it, then `--set` overrides."""
    tree: dict[str, Any] = {}
    for source in (path, profile):
        if source is None:
            continue
        source = Path(source)
        if not source.exists():
            raise ParamsError(f"{source}: file not found")
        loaded = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ParamsError(f"{source}: expected a mapping of sections")
        tree = deep_merge(tree, loaded)
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
