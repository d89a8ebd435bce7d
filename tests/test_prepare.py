"""The prepare stage: splits by user, deterministic, validated before they land."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from components.data.assign import assign
from components.data.io import read_jsonl, write_jsonl
from components.data.prepare import fractions, links, needs, run_prepare
from components.data.schema import COMPARISONS, DEMONSTRATIONS, KINDS, PROMPTS, SPLITS, prompt_text
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
            for r in read_jsonl(out / split / name) if (out / split / name).exists() else []:
                key = r.get("user_id", r["id"])
                assert owner.setdefault(key, split) == split
                if "messages" in r:
                    assert texts.setdefault(prompt_text(r["messages"]), split) == split
    for name in KINDS.values():  # nothing lost, nothing added
        total = sum(metrics["records"][name].values())
        assert total == len(read_jsonl(tiny_data / name))


def record(i: int, user: str, text: str | None = None) -> dict:
    return {"id": f"r{i}", "user_id": user, "messages": [{"role": "user", "content": text or f"Question {i}?"}]}


def split_shares(splits: list[str]) -> dict[str, float]:
    return {s: splits.count(s) / len(splits) for s in SPLITS}


def test_every_file_is_cut_near_the_fractions(
    prepared: tuple[Path, dict], tiny_params: Params, tiny_data: Path
) -> None:
    _, metrics = prepared
    for name, counts in metrics["records"].items():
        total = sum(counts.values())
        users = (
            Counter(r.get("user_id", r["id"]) for r in read_jsonl(tiny_data / name))
            if (tiny_data / name).exists()
            else {}
        )
        largest = (
            max(users.values(), default=0) / total
        )  # a user is never split: each of a split's two cuts may miss by one
        for split, share in fractions(tiny_params.prepare, name).items():
            assert counts.get(split, 0) / total == pytest.approx(share, abs=max(0.05, 2 * largest)), (
                name,
                split,
                counts,
            )


def test_a_small_file_of_anonymous_rows_fills_every_split_it_needs(tiny_params: Params) -> None:
    files = {COMPARISONS: [record(i, f"u{i}") for i in range(12)], PROMPTS: [record(i, f"p{i}") for i in range(5)]}
    where = assign(files, fractions(tiny_params.prepare, COMPARISONS), 0, links, needs(tiny_params.prepare))
    assert set(where[COMPARISONS]) == set(SPLITS)  # 12 rows: the judge's 10% included
    assert set(where[PROMPTS]) == {"train", "valid", "test"}  # a prompts file needs no judge split


def test_the_same_prompt_in_two_files_lands_in_one_split(tiny_params: Params) -> None:
    texts = [f"Instruction {i}" for i in range(300)]
    files = {
        DEMONSTRATIONS: [record(i, f"alpaca-d{i}", t) for i, t in enumerate(texts)],
        PROMPTS: [record(i, f"alpaca-p{i}", t) for i, t in enumerate(texts)],
    }
    where = assign(files, fractions(tiny_params.prepare, COMPARISONS), 0, links, needs(tiny_params.prepare))
    assert where[DEMONSTRATIONS] == where[PROMPTS]
    assert split_shares(where[PROMPTS])["test"] == pytest.approx(0.1, abs=0.02)


def test_records_added_later_move_few_of_the_earlier_ones(tiny_params: Params) -> None:
    shares, need = fractions(tiny_params.prepare, COMPARISONS), needs(tiny_params.prepare)
    before = [record(i, f"u{i // 3}") for i in range(3000)]
    after = before + [record(i, f"new{i // 3}") for i in range(3000, 3150)]  # 5% more, from new users
    first = assign({COMPARISONS: before}, shares, 0, links, need)[COMPARISONS]
    second = assign({COMPARISONS: after}, shares, 0, links, need)[COMPARISONS]
    moved = sum(a != b for a, b in zip(first, second[: len(first)], strict=True))
    assert moved / len(before) < 0.05  # only groups next to a cut cross it
    assert split_shares(second)["test"] == pytest.approx(0.1, abs=0.01)


def test_prepare_is_deterministic(
    prepared: tuple[Path, dict], tiny_data: Path, tiny_params: Params, tmp_path: Path
) -> None:
    out, _ = prepared
    run_prepare(tiny_params.prepare, tiny_params.validate_, tiny_data, tmp_path / "again")
    for split in SPLITS:
        for name in KINDS.values():
            if (out / split / name).exists():
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
    expected = r"demonstrations.jsonl: its 5 records belong to 1 users, too few to give valid \(10%\), test \(10%\) any"
    with pytest.raises(StageError, match=expected):
        run_prepare(tiny_params.prepare, tiny_params.validate_, data, out)
    assert not out.exists()  # nothing half-written
