"""The command line: overrides, clear errors, exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from components.cli import app, main

from .conftest import ROOT, SHARED_DATASETS, TINY

runner = CliRunner()


def test_generate_takes_set_overrides(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["data", "generate", "--out", str(tmp_path / "d"), "--profile", str(TINY), "--set", "data.corpus_docs=17"]
    )
    assert result.exit_code == 0, result.output
    assert "labeler agreement" in result.output
    assert json.loads((tmp_path / "d" / "stats.json").read_text())["corpus_docs"] == 17


def test_bad_params_exit_2_naming_the_key(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(
        "sys.argv", ["instructflow", "data", "generate", "--out", str(tmp_path), "--set", "data.k_mx=3"]
    )
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2
    assert "data.k_mx" in capsys.readouterr().err


def test_validate_exits_1_with_a_report_naming_the_record(tiny_data: Path, tmp_path: Path, monkeypatch) -> None:
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    with open(data / "comparisons.jsonl", "a", encoding="utf-8") as f:
        f.write(
            '{"id": "broken-1", "user_id": "u", "category": "Chat", "messages": [{"role": "user", "content": "x"}],'
            ' "completions": ["a", "b"], "ranks": [1, 1]}\n'
        )
        f.write("{not json\n")
    monkeypatch.chdir(tmp_path)
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")  # a project's own params
    result = runner.invoke(app, ["validate", "--data", str(data), "--profile", str(TINY)])
    assert result.exit_code == 1
    assert "comparisons.jsonl" in result.output and "broken-1" in result.output
    lines = sum(1 for _ in open(data / "comparisons.jsonl", encoding="utf-8"))
    assert f"line {lines}" in result.output  # the malformed line, by number
    assert "Traceback" not in result.output


def test_unknown_stage_is_a_clear_error() -> None:
    result = runner.invoke(app, ["stage", "nosuch"])
    assert result.exit_code == 1 and "stages: validate, prepare" in result.output


def test_import_writes_native_records(tmp_path: Path) -> None:
    src = SHARED_DATASETS / "self-instruct-seed-tasks.jsonl"
    if not src.exists():
        pytest.skip(f"../shared/datasets not present: {src} is missing")
    out = tmp_path / "demonstrations.jsonl"
    result = runner.invoke(app, ["data", "import", "alpaca", str(src), "--kind", "demonstrations", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.exists() and '"category_source"' in out.read_text()
    bad = runner.invoke(app, ["data", "import", "alpaca", str(src), "--kind", "corpus"])
    assert bad.exit_code == 1 and "--kind must be" in bad.output
