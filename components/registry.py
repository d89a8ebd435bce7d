"""The MLflow model registry: register the reward model and the policy, promote, roll back.

Each registered version is a Hugging Face folder in MLflow's transformers flavour
(`mlflow.transformers.load_model(uri)` works; so does loading `model/` and
`components/tokenizer/` by path with our safetensors loaders), tagged with its lineage.
Aliases: the newest policy is `candidate`; `champion` moves only when `evaluate` decided to
promote. The version that was champion before is kept in the new champion's
`instructflow.previous_champion` tag, which is what `rollback` follows. Aliases are set
last, after the version exists completely, so a crash never leaves an alias on a
half-registered model.

MLflow moves one alias at a time, so the policy's aliases are the commit point: each policy
version names its reward model in its `reward_model_version` tag, and the reward model's aliases
follow the policy's after every move (`follow_policy`). Every command that moves aliases first
repairs what a crash between the two writes left, so the two never disagree for longer than
until the next register or rollback.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from components.hashing import values_digest
from components.params import Params, PromotionParams
from components.tracking import configure

CANDIDATE, CHAMPION = "candidate", "champion"
PREVIOUS = "instructflow.previous_champion"
PIP_REQUIREMENTS = ["torch", "transformers", "safetensors"]  # explicit: MLflow otherwise asks for torchvision


class RegistryError(RuntimeError):
    """The registry cannot do what was asked (no champion, nothing to roll back to)."""


def client(root: Path):
    from mlflow import MlflowClient

    configure(root)
    return MlflowClient()


def data_version(root: Path) -> str:
    """The data folder's DVC hash from data.dvc ("untracked" when the project has none)."""
    path = root / "data.dvc"
    if not path.exists():
        return "untracked"
    outs = yaml.safe_load(path.read_text(encoding="utf-8")).get("outs", [{}])
    return str(outs[0].get("md5", "untracked"))


def git_commit(root: Path) -> str:
    result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=False)
    return result.stdout.strip() or "unknown"


def params_hash(params: Params) -> str:
    return values_digest(params.model_dump(by_alias=True, mode="json"))[:16]


def lineage(root: Path, params: Params) -> dict[str, str]:
    return {
        "data_version": data_version(root),
        "git_commit": git_commit(root),
        "params_hash": params_hash(params),
        "parent_run_id": os.environ.get("INSTRUCTFLOW_PARENT_RUN_ID", ""),
    }


def log_hf_model(folder: Path, name: str, registered_name: str, task: str, tags: dict[str, str]):
    """Log a local HF folder as an MLflow transformers model and register it; returns the ModelVersion."""
    import logging

    import mlflow

    from components.models.model import load_causal_lm, load_tokenizer
    from components.models.reward import load_scorer

    # A local folder has no hub model card or licence to look up: MLflow's warnings about it are noise.
    logging.getLogger("mlflow.transformers").setLevel(logging.ERROR)

    model = load_causal_lm(folder) if task == "text-generation" else load_scorer(folder)
    info = mlflow.transformers.log_model(
        transformers_model={"model": model, "tokenizer": load_tokenizer(folder)},
        name=name,
        task=task,
        pip_requirements=PIP_REQUIREMENTS,
        registered_model_name=registered_name,
        metadata=tags,
    )
    version = str(info.registered_model_version)
    mlflow_client = mlflow.MlflowClient()
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(registered_name, version, key, value)
    return mlflow_client.get_model_version(registered_name, version)


def alias_version(mlflow_client, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(mlflow_client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def follow_policy(mlflow_client, gates: PromotionParams) -> None:
    """Point each reward-model alias at the version the policy's version of that alias names."""
    for alias in (CANDIDATE, CHAMPION):
        version = alias_version(mlflow_client, gates.policy_name, alias)
        if version is None:
            continue
        rm = mlflow_client.get_model_version(gates.policy_name, version).tags.get("reward_model_version")
        if rm and alias_version(mlflow_client, gates.reward_model_name, alias) != rm:
            mlflow_client.set_registered_model_alias(gates.reward_model_name, alias, rm)


def register(params: Params, root: Path, policy: Path, reward_model: Path, evaluation: dict) -> dict:
    """Register both models, alias the policy `candidate`, and `champion` when evaluation promoted it."""
    gates = params.promotion
    mlflow_client = client(root)
    follow_policy(mlflow_client, gates)  # what a crash in an earlier register left
    tags = {**lineage(root, params), "promoted": str(evaluation["promoted"]).lower()}
    rm_version = log_hf_model(reward_model, "reward_model", gates.reward_model_name, "text-classification", tags)
    policy_version = log_hf_model(policy, "policy", gates.policy_name, "text-generation", tags)
    mlflow_client.set_model_version_tag(
        gates.policy_name, policy_version.version, "promotion_reasons", "; ".join(evaluation["promotion_reasons"])
    )
    mlflow_client.set_model_version_tag(
        gates.policy_name, policy_version.version, "reward_model_version", rm_version.version
    )
    previous = alias_version(mlflow_client, gates.policy_name, CHAMPION)
    if evaluation["promoted"] and previous is not None:
        mlflow_client.set_model_version_tag(gates.policy_name, policy_version.version, PREVIOUS, previous)
    mlflow_client.set_registered_model_alias(gates.policy_name, CANDIDATE, policy_version.version)
    if evaluation["promoted"]:
        mlflow_client.set_registered_model_alias(gates.policy_name, CHAMPION, policy_version.version)
    follow_policy(mlflow_client, gates)
    return {
        "policy_version": int(policy_version.version),
        "reward_model_version": int(rm_version.version),
        "promoted": evaluation["promoted"],
        "promotion_reasons": evaluation["promotion_reasons"],
        "champion_version": int(policy_version.version if evaluation["promoted"] else previous or 0) or None,
        "previous_champion_version": int(previous) if previous else None,
        "policy_uri": f"models:/{gates.policy_name}/{policy_version.version}",
    }


def rollback(root: Path, gates: PromotionParams) -> tuple[str, str]:
    """Move `champion` back to the version that was champion before the current one."""
    mlflow_client = client(root)
    follow_policy(mlflow_client, gates)
    current = alias_version(mlflow_client, gates.policy_name, CHAMPION)
    if current is None:
        raise RegistryError(f"model {gates.policy_name!r} has no champion: nothing to roll back")
    previous = mlflow_client.get_model_version(gates.policy_name, current).tags.get(PREVIOUS)
    if not previous:
        raise RegistryError(f"{gates.policy_name} v{current} is the first champion: no earlier version to roll back to")
    mlflow_client.set_registered_model_alias(gates.policy_name, CHAMPION, previous)
    follow_policy(mlflow_client, gates)
    return current, previous


@dataclass
class LocalModel:
    """Where a model's weights and tokenizer lie on disk."""

    weights: Path
    tokenizer: Path
    uri: str


def fetch(uri: str, root: Path, dest: Path) -> LocalModel:
    """A model URI (models:/name@alias, runs:/..., or a local folder) as local folders."""
    path = Path(uri)
    if not uri.startswith(("models:/", "runs:/")) and path.is_dir():
        return LocalModel(path, path, uri)
    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one small model: no bar
    client(root)
    folder = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(dest)))
    weights, tokenizer = folder / "model", folder / "components" / "tokenizer"
    if not (weights / "config.json").exists():
        raise RegistryError(f"{uri}: not a transformers model (no model/config.json in {folder})")
    return LocalModel(weights, tokenizer if tokenizer.exists() else weights, uri)


def champion(root: Path, gates: PromotionParams, dest: Path) -> LocalModel | None:
    """The current champion policy downloaded to DEST, or None when there is none (or tracking is off)."""
    if os.environ.get("INSTRUCTFLOW_TRACKING", "on") == "off":
        return None
    mlflow_client = client(root)
    if alias_version(mlflow_client, gates.policy_name, CHAMPION) is None:
        return None
    return fetch(f"models:/{gates.policy_name}@{CHAMPION}", root, dest)
