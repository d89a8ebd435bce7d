"""The side-by-side scripts against TRL run (they need benchmarks/peers/setup.sh's environments)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks.peers import ppo
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
