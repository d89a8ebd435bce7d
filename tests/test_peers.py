"""The side-by-side scripts against TRL run (they need benchmarks/peers/setup.sh's environments)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks.peers import ppo, rm, sft
from benchmarks.peers.case import write_case
from components.params import Params


def test_a_case_holds_plain_hugging_face_models_and_prompt_ids(tiny_params: Params, tiny_data: Path, tmp_path: Path):
    case = write_case(tmp_path / "case", tiny_params, 8, tiny_data)
    assert (case / "policy" / "model.safetensors").exists() and (case / "reward" / "model.safetensors").exists()
    prompts = json.loads((case / "prompts.json").read_text())
    assert len(prompts) == 8 and all(isinstance(t, int) for p in prompts for t in p)


@pytest.mark.skipif(not ppo.PEER.exists(), reason="TRL's environment is missing: run benchmarks/peers/setup.sh")
def test_ppo_side_by_side_prints_both_rates_and_the_mismatches(tiny_data: Path, tmp_path: Path, capsys) -> None:
    from benchmarks.common import benchmark_params

    case = write_case(tmp_path / "case", benchmark_params(), 64, tiny_data)
    result = ppo.main(episodes=64, rounds=1, case=case)
    assert result["ours_episodes_per_second"] > 0 and result["trl_episodes_per_second"] > 0
    assert result["mismatches"] and json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == result
    shutil.rmtree(case)


def test_a_case_holds_each_stage_s_texts_with_our_ids(tiny_params: Params, tiny_data: Path, tmp_path: Path) -> None:
    case = write_case(tmp_path / "case", tiny_params, 0, tiny_data, demonstrations=8, comparisons=4, held_out=(2, 2))
    about = json.loads((case / "case.json").read_text())
    assert (about["demonstrations"], about["held_out_demonstrations"], about["comparisons"]) == (8, 2, 4)
    demo = json.loads((case / "sft.jsonl").read_text().splitlines()[0])
    assert demo["prompt"].endswith("<|assistant|>\n") and len(demo["labels"]) == len(demo["input_ids"])
    assert demo["labels"][0] == -100 and demo["labels"][-1] == demo["input_ids"][-1]  # the prompt masked, EOS learned
    ranked = json.loads((case / "rm.jsonl").read_text().splitlines()[0])
    assert len(ranked["sequences"]) == len(ranked["completions"]) and ranked["pairs"]
    assert about["pairs"] == sum(
        len(json.loads(line)["pairs"]) for line in (case / "rm.jsonl").read_text().splitlines()
    )
    assert (case / "rm-init" / "model.safetensors").exists()


@pytest.fixture(scope="module")
def stage_case(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small case of the default model shape for the SFT and RM drivers: 32 + 8 demonstrations, 8 + 4 comparisons."""
    from benchmarks.common import benchmark_params

    out = tmp_path_factory.mktemp("peers") / "case"
    return write_case(out, benchmark_params(), 0, tiny_data, demonstrations=32, comparisons=8, held_out=(8, 4))


def one_json_line(capsys) -> dict:
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


@pytest.mark.skipif(not sft.PEER.exists(), reason="trl 1.16's environment is missing: run benchmarks/peers/setup.sh")
def test_sft_side_by_side_prints_both_rates_losses_and_the_mismatches(stage_case: Path, capsys) -> None:
    result = sft.main(rounds=1, case=stage_case, costs=False)
    assert result["ours_tokens_per_second"] > 0 and result["trl_tokens_per_second"] > 0
    assert result["ours_valid_loss"][0] > 0 and result["trl_valid_loss"][0] > 0
    assert result["steps"] == {"ours": 2, "trl": 2} and result["tokens"] > 0  # 32 demonstrations, 16 a step
    assert result["mismatches"] and not any("tokenisation" in m for m in result["mismatches"])
    assert one_json_line(capsys) == result


@pytest.mark.skipif(not rm.PEER.exists(), reason="trl 1.16's environment is missing: run benchmarks/peers/setup.sh")
def test_rm_side_by_side_prints_both_rates_accuracies_and_the_mismatches(stage_case: Path, capsys) -> None:
    result = rm.main(rounds=1, case=stage_case, batch_size=4, costs=False)
    assert result["ours_pairs_per_second"] > 0 and result["trl_pairs_per_second"] > 0
    assert all(0 <= a[0] <= 1 for a in (result["ours_held_out_accuracy"], result["trl_held_out_accuracy"]))
    assert result["steps"] == {"ours": 2, "trl": 2}  # 8 prompts, 4 a step; TRL as many steps
    assert result["sequences_forwarded"]["ours"] < result["sequences_forwarded"]["trl"]  # K, not 2 per pair
    assert one_json_line(capsys) == result
