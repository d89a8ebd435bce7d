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


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str]:
    """`instructflow ARGV` through the entry point, as the console script runs it: (exit code, stderr)."""
    monkeypatch.setattr("sys.argv", ["instructflow", *argv])
    capsys.readouterr()  # what came before is not the command's
    with pytest.raises(SystemExit) as e:
        main()
    return e.value.code, capsys.readouterr().err


def model_folder(path: Path, config: dict | None = None, weights: bytes | None = None) -> Path:
    """A tiny GPT-2 folder as a user might bring it, with its config or weights replaced."""
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=64, n_positions=16)).save_pretrained(path)
    if config is not None:
        (path / "config.json").write_text(json.dumps(config))
    if weights is not None:
        (path / "model.safetensors").write_bytes(weights)
    return path


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("no safetensors", "no safetensors weights (found pytorch_model.bin"),
        ("auto_map", "the model names code of its own (auto_map: ['AutoModelForCausalLM'])"),
        ("truncated weights", "cannot load the model (Error while deserializing header"),
    ],
)
def test_a_model_base_that_cannot_load_is_one_line_naming_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, case: str, expected: str
) -> None:
    folder = model_folder(tmp_path / "base")
    if case == "no safetensors":
        (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    elif case == "auto_map":
        config = json.loads((folder / "config.json").read_text())
        model_folder(folder, {**config, "auto_map": {"AutoModelForCausalLM": "modeling_x.X"}})
    else:
        model_folder(folder, weights=(folder / "model.safetensors").read_bytes()[:5])
    monkeypatch.chdir(tmp_path)
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    code, err = run_main(monkeypatch, capsys, "stage", "pretrain", "--set", f"model.base={folder}")
    last = err.strip().splitlines()[-1]  # MLflow's own lines may come before (it creates the store)
    assert code == 1 and expected in last and str(folder) in last, err
    assert "Traceback" not in err, err


def test_a_file_where_a_folder_is_needed_is_one_line_and_debug_shows_the_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("INSTRUCTFLOW_DEBUG", "")  # what --debug sets is undone after the test
    (tmp_path / "afile").write_text("")
    source = str(SHARED_DATASETS / "alpaca-5000.json")
    out = str(tmp_path / "afile/x.jsonl")
    code, err = run_main(monkeypatch, capsys, "data", "import", "alpaca", source, "--out", out)
    assert code == 1 and "afile is a file where a folder is needed" in err and "Traceback" not in err, err
    monkeypatch.setattr("sys.argv", ["instructflow", "--debug", "data", "generate", "--out", str(tmp_path / "afile/d")])
    with pytest.raises(OSError):  # --debug: the error itself, for its traceback
        main()


def test_an_import_of_nothing_leaves_the_data_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    target = tmp_path / "demonstrations.jsonl"
    target.write_text('{"id": "kept"}\n')
    (tmp_path / "empty.json").write_text("[]")
    code, err = run_main(monkeypatch, capsys, "data", "import", "alpaca", str(tmp_path / "empty.json"),
                         "--out", str(target))  # fmt: skip
    assert code == 1 and "no demonstrations record to write" in err and "left as it was" in err, err
    assert target.read_text() == '{"id": "kept"}\n'


def test_a_profile_that_is_not_utf8_is_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    profile = tmp_path / "latin1.yaml"
    profile.write_bytes("data:\n  scale: 0.1  # réduit\n".encode("latin-1"))
    out = str(tmp_path / "d")
    code, err = run_main(monkeypatch, capsys, "data", "generate", "--out", out, "--profile", str(profile))
    assert code == 2 and f"{profile}: not valid UTF-8" in err and "Traceback" not in err, err
