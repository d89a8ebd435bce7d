"""Each benchmark runs one tiny step, so none can rot; speed is measured by running them, never here."""

from __future__ import annotations

import json

import pytest

from benchmarks import mfu, ppo_throughput, rm_throughput, sft_throughput, stage_start
from components.params import Params


@pytest.mark.parametrize(
    ("module", "name", "options"),
    [
        (sft_throughput, "sft_tokens_per_second", {}),
        (rm_throughput, "rm_comparisons_per_second", {}),
        (ppo_throughput, "ppo_episodes_per_second", {"corpus_docs": 100}),
        (mfu, "model_flops_utilisation", {}),
        (mfu, "model_flops_utilisation", {"processes": 2}),
        (stage_start, "stage_start_speedup", {}),
    ],
)
def test_each_benchmark_prints_one_json_line(module, name: str, options: dict, tiny_params: Params, capsys) -> None:
    module.main(tiny_params, repeats=1, **options)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["benchmark"] == name and result["value"] > 0


@pytest.mark.slow
def test_the_scaling_benchmark_runs_the_whole_pipeline_at_a_point(capsys, tmp_path, prefect_server: str) -> None:
    from benchmarks import scaling

    from .conftest import TINY

    # The session's server: a temporary one first migrates a fresh database, seconds of CPU this
    # test is not about (test_faults tests the temporary server).
    scaling.main([0.005], ["1x32"], TINY, tmp_path / "scaling.png", prefect_api=prefect_server)
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (row,) = result["rows"]
    assert row["scale"] == 0.005 and row["model"] == "1x32" and row["seconds"] > 0
    assert set(row["stage_seconds"]) >= {"pretrain", "sft", "rm", "ppo"}
    assert (tmp_path / "scaling.png").stat().st_size > 0
