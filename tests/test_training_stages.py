"""The training stages on the tiny profile: outputs, metrics, MLflow runs, the reward bias."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import torch

from components.data.io import DataError, read_jsonl
from components.models.model import (
    context_length,
    inference_device,
    load_causal_lm,
    load_reward_model,
    load_tokenizer,
    reward_model_from,
    tiny_lm,
    train_tokenizer,
)
from components.params import Params
from components.stages import STAGES
from components.train.rm import score


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

    mlflow.set_tracking_uri(f"sqlite:///{trained_root / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["instructflow"], output_format="list")
    by_stage = {r.data.tags["instructflow.stage"]: r for r in runs}
    assert {"pretrain", "sft", "rm", "select_sft"} <= by_stage.keys()
    assert "accuracy" in by_stage["rm"].data.metrics and "train/loss" in by_stage["sft"].data.metrics
    client = mlflow.MlflowClient()
    history = client.get_metric_history(by_stage["pretrain"].info.run_id, "train/loss")
    assert len(history) >= 2 and history[0].step < history[-1].step  # metrics with steps


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
    with pytest.raises(OSError):
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
    two = tiny_params.model_copy(update={"resources": tiny_params.resources.model_copy(update={"num_processes": 2})})
    two_metrics = STAGES["rm"].run(two, root)
    one = metrics(trained_root, "rm")
    assert two_metrics["accuracy"] == pytest.approx(one["accuracy"], abs=0.05)
    assert two_metrics["reward_bias"] == pytest.approx(one["reward_bias"], abs=1e-2)
    assert torch.cuda.is_available() or two_metrics["comparisons_per_second"] > 0


def test_the_rm_diagnosis_reports_on_policy_accuracy_best_of_k_and_the_swap_probe(
    trained_root: Path, tiny_params: Params
) -> None:
    from scripts.rm_diagnose import diagnose

    models = trained_root / "artifacts" / "models"
    params = tiny_params.model_copy(deep=True)
    params.pipeline.max_new_tokens = 8
    result = diagnose(trained_root, models / "sft" / "epoch-02", models / "rm", params, prompts=6, k=3)
    assert result["prompts"] == 6 and result["k"] == 3
    rates = [result["best_of_k_by_rm_vs_greedy"], result["best_of_k_by_gold_vs_greedy"], *result["swap_probe"].values()]
    assert len(rates) == 5 and all(0.0 <= value <= 1.0 for value in rates)
    # the oracle picks the best sample, so it never does worse against greedy than the RM's pick
    assert result["best_of_k_by_gold_vs_greedy"] >= result["best_of_k_by_rm_vs_greedy"]
    # every pair with unequal gold falls in exactly one category and one gap bin
    by_category = result["onpolicy_by_category"].values()
    by_gap = result["onpolicy_by_gold_gap"].values()
    assert sum(n for _, n in by_category) == sum(n for _, n in by_gap)
    counted = [acc for acc, n in [*by_category, *by_gap] if n]
    assert all(0.0 <= acc <= 1.0 for acc in counted)
    accuracy, pairs = result["repeat_probe"]
    assert pairs <= 6 and (accuracy is None or 0.0 <= accuracy <= 1.0)
    assert 0 <= result["greedy_repeat_slips"] <= 6
    assert result["win_rate_if_slips_fixed"] == 0.5 + result["greedy_repeat_slips"] / 12


def test_a_repeat_slip_names_something_more_often_than_the_ideal_does() -> None:
    from scripts.rm_diagnose import repeat_slip, with_repeat

    ideal = "Here are three objects: box, map and key."
    assert repeat_slip("Here are three objects: box, map and map.", ideal)
    assert not repeat_slip(ideal, ideal)
    story = "Finn found a red box. Finn kept the box."  # the ideal itself names Finn and the box twice
    assert not repeat_slip(story, story)
    assert repeat_slip("Finn found a red box. Finn kept the box and the box.", story)
    slip = with_repeat("I saw a dog, a cat and some apples today.", random.Random(0))
    assert slip is not None and repeat_slip(slip, "I saw a dog, a cat and some apples today.")
    assert with_repeat("Dear Finn, thank you for the pie.", random.Random(0)) is None  # nothing to confuse


def test_label_scale_adds_ranked_policy_samples_to_the_rm_data(
    trained_root: Path, tiny_data: Path, tiny_params: Params, tmp_path: Path
) -> None:
    from scripts.rm_label_scale import run, variant

    result = run(trained_root, tiny_data, tiny_params, sizes=[0, 10], workers=1, ppo=False, prompts=4)
    # ranked samples of the policy, one per prompt asked; prompts the labeler tied all through are
    # dropped (the tiny model's answers all score 0, so most of its rankings are ties)
    assert 0 < result["comparisons"] <= 10
    assert [row["onpolicy_comparisons"] for row in result["sizes"]] == [0, result["comparisons"]]
    for row in result["sizes"]:
        assert 0.0 <= row["rm_gold_accuracy"] <= 1.0 and 0.0 <= row["best_of_k_by_rm_vs_greedy"] <= 1.0
    added = [{"id": f"cmp-new-{i}", "user_id": f"user-{i}", "prompt_id": "none"} for i in range(30)]
    folder = variant(trained_root, tiny_data, tiny_params, added, tmp_path / "v")
    splits = {
        s: read_jsonl(folder / "artifacts" / "data" / s / "comparisons.jsonl") for s in ("train", "valid", "test")
    }
    own = {s: read_jsonl(trained_root / "artifacts" / "data" / s / "comparisons.jsonl") for s in splits}
    assert sum(len(splits[s]) - len(own[s]) for s in splits) == len(added)  # each new one in exactly one split
    assert len(read_jsonl(folder / "data" / "comparisons.jsonl")) == sum(len(own[s]) for s in own) + len(added)


def test_sft_mixes_in_corpus_blocks_and_so_forgets_less_of_the_corpus(
    trained_root: Path, tiny_params: Params, tmp_path: Path
) -> None:
    """sft.ptx_fraction: the share of SFT examples that are corpus blocks (the paper's PPO init: 10%)."""
    from components.train.pretrain import pack, perplexity
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
