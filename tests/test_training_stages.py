"""The training stages on the tiny profile: outputs, metrics, MLflow runs, the reward bias."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from components.data.io import read_jsonl
from components.errors import DataError, StageError
from components.eval.metrics import score
from components.models.model import (
    context_length,
    inference_device,
    load_causal_lm,
    load_tokenizer,
    tiny_lm,
    train_tokenizer,
)
from components.models.reward import load_reward_model, reward_model_from
from components.params import Params
from components.stages import STAGES


def metrics(root: Path, stage: str) -> dict:
    return json.loads((root / "artifacts" / "metrics" / f"{stage}.json").read_text())


def test_stage_metrics_have_the_promised_keys(trained_root: Path) -> None:
    assert {"loss", "tokens_per_second"} <= metrics(trained_root, "pretrain").keys()
    assert {"valid_loss", "gold_score", "base_gold_score", "tokens_per_second"} <= metrics(trained_root, "sft").keys()
    rm = metrics(trained_root, "rm")
    assert {
        "accuracy",
        "gold_accuracy",
        "demo_mean_reward",
        "comparisons_per_second",
        "completions_per_second",
    } <= rm.keys()
    assert 0 <= rm["accuracy"] <= 1 and 0 <= rm["gold_accuracy"] <= 1
    select = metrics(trained_root, "select_sft")
    best = max(select["scores"].values(), key=lambda s: s["rm_score"])
    assert select["scores"][select["selected"]] == best and (trained_root / select["selected_path"]).is_dir()


def test_select_sft_compares_only_the_last_epochs_when_asked(trained_root: Path, tiny_params: Params) -> None:
    from components.tracking import Tracker
    from components.train.select_sft import run_select_sft

    params = tiny_params.model_copy(deep=True)
    params.select_sft.last_epochs, params.select_sft.prompts = 1, 4
    models, splits = trained_root / "artifacts" / "models", trained_root / "artifacts" / "data"
    result = run_select_sft(params, trained_root / "data", splits, models / "sft", models / "rm", Tracker(False))
    assert list(result["scores"]) == [f"epoch-{tiny_params.sft.epochs:02d}"] == [result["selected"]]


def test_models_are_hugging_face_folders_with_safetensors(trained_root: Path, tiny_params: Params) -> None:
    models = trained_root / "artifacts" / "models"
    assert sorted(p.name for p in (models / "sft").iterdir()) == [
        f"epoch-{e:02d}" for e in range(1, tiny_params.sft.epochs + 1)
    ]
    for folder in (models / "base", models / "sft" / "epoch-01", models / "rm"):
        assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()
    tok = load_tokenizer(models / "base")
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False) == (
        "<|user|>\nhi<|end|>\n<|assistant|>\n"
    )


def test_the_reward_bias_centres_demonstrations_and_every_loader_applies_it(trained_root: Path) -> None:
    rm, tok = load_reward_model(trained_root / "artifacts" / "models" / "rm")
    demos = read_jsonl(trained_root / "artifacts" / "data" / "train" / "demonstrations.jsonl")
    conversations, answers = [d["messages"] for d in demos], [d["completion"] for d in demos]
    rewards = score(rm, tok, conversations, answers, 96)
    assert abs(sum(rewards) / len(rewards)) < 1e-4
    raw = score(rm.model, tok, conversations, answers, 96)  # the bare HF model: no bias
    assert rm.bias != 0 and rewards[0] == pytest.approx(raw[0] + rm.bias, abs=1e-5)


def test_each_stage_is_a_nested_mlflow_run_with_metrics(trained_root: Path) -> None:
    import mlflow

    from components.tracking import configure

    # configure, not mlflow.set_tracking_uri: that one exports MLFLOW_TRACKING_URI, and every later
    # test in this worker would then log and register into this store.
    configure(trained_root)
    runs = mlflow.search_runs(experiment_names=["instructflow"], output_format="list")
    by_stage = {r.data.tags["instructflow.stage"]: r for r in runs}
    assert {"pretrain", "sft", "rm", "select_sft"} <= by_stage.keys()
    assert "accuracy" in by_stage["rm"].data.metrics and "train/loss" in by_stage["sft"].data.metrics
    client = mlflow.MlflowClient()
    history = client.get_metric_history(by_stage["pretrain"].info.run_id, "train/loss")
    assert len(history) >= 2 and history[0].step < history[-1].step  # metrics with steps
    # The stage's summary (valid_loss after the last epoch) lands at the last step, not before the first epoch.
    valid = client.get_metric_history(by_stage["sft"].info.run_id, "valid_loss")
    epochs = json.loads((trained_root / "artifacts" / "metrics" / "sft.json").read_text())["valid_loss_by_epoch"]
    assert min(m.step for m in valid) > 0 and max(valid, key=lambda m: m.step).value == pytest.approx(epochs[-1])


def test_a_local_hugging_face_model_is_fine_tuned_instead_of_pretraining(
    prepared_root: Path, tiny_params: Params, tmp_path: Path
) -> None:
    """model.base: a local folder (no hub, no remote code); its tokenizer has no chat template."""
    local = tmp_path / "my-model"
    tok = train_tokenizer(["Alice lives in Brindle.", "Some text about the world."] * 50, 300)
    tok.chat_template = None
    tiny_lm(tok, tiny_params.model).save_pretrained(local)
    tok.save_pretrained(local)
    root = tmp_path / "project"
    shutil.copytree(prepared_root / "artifacts" / "data", root / "artifacts" / "data")
    shutil.copytree(prepared_root / "data", root / "data")
    params = tiny_params.model_copy(update={"model": tiny_params.model.model_copy(update={"base": str(local)})})
    params = params.model_copy(update={"sft": params.sft.model_copy(update={"epochs": 1})})
    assert STAGES["pretrain"].run(params, root)["skipped"] is True
    STAGES["sft"].run(params, root)
    tuned = load_tokenizer(root / "artifacts" / "models" / "sft" / "epoch-01")
    assert "### user:" in tuned.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False)
    model = load_causal_lm(root / "artifacts" / "models" / "sft" / "epoch-01")
    assert model.num_parameters() == load_causal_lm(local).num_parameters()


@pytest.mark.parametrize("architecture", ["gpt_neox", "gpt2"])
def test_the_tiny_model_has_the_architecture_and_shape_of_params(
    tiny_params: Params, tmp_path: Path, architecture: str
) -> None:
    shape = tiny_params.model.model_copy(update={"architecture": architecture})
    tok = train_tokenizer(["Alice lives in Brindle."] * 20, 300)
    tiny_lm(tok, shape).save_pretrained(tmp_path)
    model = load_causal_lm(tmp_path)
    assert model.config.model_type == architecture
    assert context_length(model.config, 0) == shape.context
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight  # tied, as GPT-2
    assert model.config.num_hidden_layers == shape.n_layer and model.config.hidden_size == shape.n_embd


def test_models_that_only_answer_load_onto_the_gpu_when_there_is_one(
    trained_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """select_sft, evaluate, rounds and chat load with device=inference_device(); training has accelerate."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert inference_device() == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert inference_device() == torch.device("cuda")
    models = trained_root / "artifacts" / "models"
    # "meta" stands in for a GPU on this CPU-only machine: the weights go where they are sent.
    assert {p.device.type for p in load_causal_lm(models / "base", device="meta").parameters()} == {"meta"}
    assert {p.device.type for p in load_reward_model(models / "rm", device="meta")[0].parameters()} == {"meta"}
    assert {p.device.type for p in load_causal_lm(models / "base").parameters()} == {"cpu"}


def test_weights_load_only_from_safetensors(tmp_path: Path, tiny_params: Params) -> None:
    """A folder with only a pickled checkpoint is refused, not unpickled."""
    tok = train_tokenizer(["a b c"] * 20, 300)
    model = tiny_lm(tok, tiny_params.model)
    model.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(StageError, match="no safetensors weights .found pytorch_model.bin: pickled weights are never"):
        load_causal_lm(tmp_path)


def test_a_reward_model_starts_from_the_whole_lm_or_not_at_all(tmp_path: Path, tiny_params: Params) -> None:
    """Only the scalar head is new; a folder missing backbone weights is refused, not half-loaded."""
    from safetensors.torch import load_file, save_file

    tok = train_tokenizer(["a b c"] * 20, 300)
    lm = tiny_lm(tok, tiny_params.model)
    lm.save_pretrained(tmp_path)
    rm = reward_model_from(tmp_path, tok.pad_token_id)
    backbone = getattr(rm, rm.base_model_prefix)
    assert torch.equal(backbone.get_input_embeddings().weight, lm.get_input_embeddings().weight)
    weights = load_file(tmp_path / "model.safetensors")
    dropped = sorted(k for k in weights if ".layers.0." in k or ".h.0." in k)
    assert dropped
    save_file({k: v for k, v in weights.items() if k not in dropped}, tmp_path / "model.safetensors")
    with pytest.raises(DataError, match=f"{tmp_path}: cannot initialise a reward model.*weights missing"):
        reward_model_from(tmp_path, tok.pad_token_id)


@pytest.mark.slow
@pytest.mark.usefixtures("two_processes")
def test_the_rm_stage_runs_on_two_processes_like_one(trained_root: Path, tiny_params: Params, tmp_path: Path) -> None:
    root = tmp_path / "project"
    shutil.copytree(trained_root / "data", root / "data")
    shutil.copytree(trained_root / "artifacts", root / "artifacts")
    two = tiny_params.model_copy(
        update={"resources": tiny_params.resources.model_copy(update={"num_processes": 2, "processes": {}})}
    )
    two_metrics = STAGES["rm"].run(two, root)
    one = metrics(trained_root, "rm")
    assert two_metrics["accuracy"] == pytest.approx(one["accuracy"], abs=0.05)
    assert two_metrics["reward_bias"] == pytest.approx(one["reward_bias"], abs=1e-2)
    assert torch.cuda.is_available() or two_metrics["comparisons_per_second"] > 0


def test_sft_mixes_in_corpus_blocks_and_so_forgets_less_of_the_corpus(
    trained_root: Path, tiny_params: Params, tmp_path: Path
) -> None:
    """sft.ptx_fraction: the share of SFT examples that are corpus blocks (the paper's PPO init: 10%)."""
    from components.eval.metrics import perplexity
    from components.models.lm import pack
    from components.train.sft import corpus_examples

    data = trained_root / "artifacts" / "data"
    base = trained_root / "artifacts" / "models" / "base"
    tok = load_tokenizer(base)
    texts = [r["text"] for r in read_jsonl(data / "train" / "corpus.jsonl")]
    mixed = corpus_examples(tok, texts, 0.1, 90, 16, seed=0)
    assert len(mixed) == 10  # 10 of 100 examples
    assert all(e["labels"] == e["input_ids"] and len(e["input_ids"]) == 16 for e in mixed)  # loss on every token
    assert mixed == corpus_examples(tok, texts, 0.1, 90, 16, seed=0)
    assert corpus_examples(tok, texts, 0.0, 90, 16, seed=0) == []

    held_out = pack([r["text"] for r in read_jsonl(data / "valid" / "corpus.jsonl")], tok, 32)

    def corpus_perplexity_after_sft(fraction: float) -> float:
        root = tmp_path / f"sft-{fraction}"
        shutil.copytree(trained_root / "data", root / "data")
        shutil.copytree(data, root / "artifacts" / "data")
        shutil.copytree(base, root / "artifacts" / "models" / "base")
        params = tiny_params.model_copy(update={"sft": tiny_params.sft.model_copy(update={"ptx_fraction": fraction})})
        STAGES["sft"].run(params, root)
        return perplexity(load_causal_lm(root / "artifacts" / "models" / "sft" / "epoch-02"), held_out)

    assert corpus_perplexity_after_sft(0.5) < corpus_perplexity_after_sft(0.0)


def test_without_a_corpus_every_stage_runs_and_skips_what_needs_one(
    tiny_data: Path, trained_root: Path, tiny_params: Params, tmp_path: Path
) -> None:
    """A user's data with no corpus: no ptx term, no perplexity, said once by prepare; pretrain needs model.base."""
    root = tmp_path / "project"
    shutil.copytree(tiny_data, root / "data", ignore=shutil.ignore_patterns("corpus.jsonl"))
    STAGES["validate"].run(tiny_params, root)
    prepared = STAGES["prepare"].run(tiny_params, root)
    assert any("no corpus.jsonl" in note for note in prepared["notes"])
    with pytest.raises(StageError, match="no pretraining text for the tiny base model; set model.base"):
        STAGES["pretrain"].run(tiny_params, root)
    base = str(trained_root / "artifacts" / "models" / "base")  # a local Hugging Face folder
    params = tiny_params.model_copy(update={"model": tiny_params.model.model_copy(update={"base": base})})
    for name in ("pretrain", "sft", "rm", "select_sft"):
        STAGES[name].run(params, root)
    ppo = STAGES["ppo"].run(params, root)
    assert ppo["episodes"] == params.ppo.episodes and ppo["corpus_perplexity"] is None
    evaluation = STAGES["evaluate"].run(params, root)
    assert set(evaluation["corpus_perplexity"].values()) == {None}
    assert evaluation["win_rate_vs_sft"]["ppo"] is not None  # everything else is measured


def test_a_reward_model_below_rm_min_accuracy_stops_the_pipeline_before_ppo(
    trained_root: Path, tiny_params: Params, tmp_path: Path
) -> None:
    root = tmp_path / "project"
    shutil.copytree(trained_root / "artifacts" / "metrics", root / "artifacts" / "metrics")
    accuracy = json.loads((root / "artifacts" / "metrics" / "rm.json").read_text())["accuracy"]
    strict = tiny_params.model_copy(update={"rm": tiny_params.rm.model_copy(update={"min_accuracy": accuracy + 0.01})})
    for name in ("select_sft", "ppo"):
        with pytest.raises(StageError, match=rf"held-out accuracy is {accuracy:.3f}, below rm.min_accuracy"):
            STAGES[name].run(strict, root)


def test_the_judge_reward_model_learns_from_the_judge_split_only_and_says_when_there_is_none(
    trained_root: Path, tiny_params: Params, tmp_path: Path
) -> None:
    judge = json.loads((trained_root / "artifacts" / "metrics" / "judge_rm.json").read_text())
    judged = read_jsonl(trained_root / "artifacts" / "data" / "judge" / "comparisons.jsonl")
    assert judge["trained"] and judge["train_comparisons"] == sum(1 for r in judged if len(set(r["ranks"])) > 1)
    assert (trained_root / "artifacts" / "models" / "judge_rm" / "config.json").exists()
    root = tmp_path / "project"
    shutil.copytree(
        trained_root / "artifacts" / "data", root / "artifacts" / "data", ignore=shutil.ignore_patterns("judge")
    )
    metrics = STAGES["judge_rm"].run(tiny_params, root)
    assert metrics["trained"] is False and "no judge split" in metrics["reason"]
    assert "no judge split" in (root / "artifacts" / "models" / "judge_rm" / "NOT_TRAINED.txt").read_text()
