"""The prepare stage: splits by user, deterministic, validated before they land."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from components.data.io import read_jsonl, write_jsonl
from components.data.prepare import run_prepare, split_of
from components.data.schema import KINDS, SPLITS, prompt_text
from components.errors import StageError
from components.params import Params
from components.stages import STAGES


@pytest.fixture(scope="module")
def prepared(tiny_data: Path, tiny_params: Params, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("prepared") / "splits"
    return out, run_prepare(tiny_params.prepare, tiny_params.validate_, tiny_data, out)


def test_no_user_or_prompt_in_two_splits(prepared: tuple[Path, dict], tiny_data: Path) -> None:
    out, metrics = prepared
    assert metrics["splits_valid"]
    owner: dict[str, str] = {}
    texts: dict[str, str] = {}
    for split in SPLITS:
        for name in KINDS.values():
            for r in read_jsonl(out / split / name):
                key = r.get("user_id", r["id"])
                assert owner.setdefault(key, split) == split
                if "messages" in r:
                    assert texts.setdefault(prompt_text(r["messages"]), split) == split
    for name in KINDS.values():  # nothing lost, nothing added
        total = sum(metrics["records"][name].values())
        assert total == len(read_jsonl(tiny_data / name))


def test_split_fractions_roughly_follow_params(tiny_params: Params) -> None:
    users = [f"user-{i}" for i in range(4000)]
    counts = {s: sum(split_of(u, tiny_params.prepare) == s for u in users) for s in SPLITS}
    assert counts["train"] / 4000 == pytest.approx(0.8, abs=0.03)
    assert counts["test"] / 4000 == pytest.approx(0.1, abs=0.03)


def test_prepare_is_deterministic(
    prepared: tuple[Path, dict], tiny_data: Path, tiny_params: Params, tmp_path: Path
) -> None:
    out, _ = prepared
    run_prepare(tiny_params.prepare, tiny_params.validate_, tiny_data, tmp_path / "again")
    for split in SPLITS:
        for name in KINDS.values():
            assert (tmp_path / "again" / split / name).read_bytes() == (out / split / name).read_bytes()


def test_prepare_refuses_data_that_was_not_validated(tiny_data: Path, tiny_params: Params, tmp_path: Path) -> None:
    root = tmp_path
    shutil.copytree(tiny_data, root / "data")
    with pytest.raises(StageError, match="run `instructflow validate`"):
        STAGES["prepare"].run(tiny_params, root)
    STAGES["validate"].run(tiny_params, root)
    STAGES["prepare"].run(tiny_params, root)
    assert (root / "artifacts" / "data" / "train" / "prompts.jsonl").exists()
    with open(root / "data" / "prompts.jsonl", "a", encoding="utf-8") as f:  # data changes after validation
        f.write('{"id": "late", "user_id": "u", "category": "Chat", "messages": [{"role": "user", "content": "hi"}]}\n')
    with pytest.raises(StageError, match="changed since it was validated"):
        STAGES["prepare"].run(tiny_params, root)


def test_failed_validation_stops_the_pipeline(tiny_data: Path, tiny_params: Params, tmp_path: Path) -> None:
    shutil.copytree(tiny_data, tmp_path / "data")
    with open(tmp_path / "data" / "demonstrations.jsonl", "a", encoding="utf-8") as f:
        f.write('{"id": "bad", "user_id": "u", "category": "Poetry", "messages": [], "completion": ""}\n')
    with pytest.raises(StageError, match="validation failed"):
        STAGES["validate"].run(tiny_params, tmp_path)
    with pytest.raises(StageError, match="last validation failed"):
        STAGES["prepare"].run(tiny_params, tmp_path)
    assert not (tmp_path / "artifacts" / "data").exists()


def test_a_file_with_too_few_users_for_the_splits_stops_with_a_message_naming_it(
    tiny_params: Params, tmp_path: Path
) -> None:
    data, out = tmp_path / "data", tmp_path / "artifacts" / "data"
    data.mkdir()
    records = [
        {"id": f"d{i}", "user_id": "only-user", "category": "Chat",
         "messages": [{"role": "user", "content": f"Question {i}?"}], "completion": "An answer."}
        for i in range(5)
    ]  # fmt: skip
    write_jsonl(data / "demonstrations.jsonl", records)
    expected = r"demonstrations.jsonl: its 5 records belong to 1 users, and the split by user left .*without any"
    with pytest.raises(StageError, match=expected):
        run_prepare(tiny_params.prepare, tiny_params.validate_, data, out)
    assert not out.exists()  # nothing half-written
