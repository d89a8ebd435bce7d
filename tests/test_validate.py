"""The validate stage: a clean folder passes; every broken rule is named by file, line, id, field and rule."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from components.data.schema import CATEGORIES, SPLITS, TABLE1
from components.data.validate import Failure, ValidationReport, run_validate
from components.errors import DataError
from components.params import ValidateParams

from .conftest import section

# KL is skipped on the small fixtures (their categories are uniform, far from Table 1); it has its own tests.
PARAMS = section("validate_", kl_min_records=1000, max_prompt_chars=300, max_completion_chars=200, max_text_chars=200)

Records = dict[str, list]  # file name -> records (dicts), or raw bytes for a line that is not JSON


@pytest.fixture(scope="module", autouse=True)
def gx():
    """Import Great Expectations once for the whole module: it takes seconds."""
    return pytest.importorskip("great_expectations")


def conversation(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def clean_records(tag: str = "") -> Records:
    """About 30 valid records over the four files; `tag` keeps ids, users and prompts apart between splits."""
    demonstrations = [
        {
            "id": f"{tag}d-{i}",
            "user_id": f"{tag}u-{i % 4}",
            "category": CATEGORIES[i % 10],
            "messages": conversation(f"{tag}Write a short note number {i}."),
            "completion": f"Note {i}.",
            "source": "fixture",  # extra fields are ignored
        }
        for i in range(8)
    ]
    demonstrations[1]["messages"] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": f"{tag}Hello."},
        {"role": "assistant", "content": "Hi."},
        {"role": "user", "content": f"{tag}Tell me a joke."},
    ]
    comparisons = [
        {
            "id": f"{tag}c-{i}",
            "user_id": f"{tag}u-{i % 4}",
            "category": CATEGORIES[(i + 3) % 10],
            "messages": conversation(f"{tag}Compare answers to question {i}."),
            "completions": [f"best {i}", f"middle {i}", f"other {i}"],
            "ranks": [1, 2, 2],
            "labeler": "l-1",
        }
        for i in range(8)
    ]
    prompts = [
        {
            "id": f"{tag}p-{i}",
            "user_id": f"{tag}u-{i % 4}",
            "category": CATEGORIES[(i + 5) % 10],
            "messages": conversation(f"{tag}Explain idea {i}."),
        }
        for i in range(8)
    ]
    corpus = [{"id": f"{tag}t-{i}", "text": f"Document {i} of the corpus."} for i in range(6)]
    return {
        "demonstrations.jsonl": demonstrations,
        "comparisons.jsonl": comparisons,
        "prompts.jsonl": prompts,
        "corpus.jsonl": corpus,
    }


def write(folder: Path, records: Records) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, items in records.items():
        lines = [item if isinstance(item, bytes) else json.dumps(item).encode() for item in items]
        (folder / name).write_bytes(b"".join(line + b"\n" for line in lines))
    return folder


def validate(tmp_path: Path, data: Path, params: ValidateParams = PARAMS) -> ValidationReport:
    return run_validate(params, data, tmp_path / "docs", tmp_path / "metrics.json")


def located(report: ValidationReport) -> set[tuple]:
    return {(f.file, f.line, f.record_id, f.field, f.rule) for f in report.failures}


def test_clean_folder_passes_and_writes_docs_and_metrics(tmp_path: Path) -> None:
    report = validate(tmp_path, write(tmp_path / "data", clean_records()))

    assert report.success, report.format()
    assert report.failures == []
    assert report.records == {"demonstrations.jsonl": 8, "comparisons.jsonl": 8, "prompts.jsonl": 8, "corpus.jsonl": 6}
    assert (tmp_path / "docs" / "index.html").is_file()
    assert list((tmp_path / "docs" / "validations").rglob("*.html"))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["success"] is True
    assert metrics["records"]["comparisons.jsonl"] == 8
    assert metrics["failures_by_rule"] == {} and metrics["failed_expectations"] == 0
    assert report.format().startswith("validation passed: 30 records in 4 files")


def _set(name: str, index: int, key: str, value: object) -> Callable[[Records], None]:
    def edit(records: Records) -> None:
        records[name][index][key] = value

    return edit


def _pop(name: str, index: int, key: str) -> Callable[[Records], None]:
    return lambda records: records[name][index].pop(key)


def _raw(name: str, index: int, line: bytes) -> Callable[[Records], None]:
    def edit(records: Records) -> None:
        records[name][index] = line

    return edit


def _copy(name: str, source: int, target: int, key: str) -> Callable[[Records], None]:
    def edit(records: Records) -> None:
        records[name][target][key] = records[name][source][key]

    return edit


def _one_completion(records: Records) -> None:
    records[C][3] |= {"completions": ["only one"], "ranks": [1]}


D, C, P, T = "demonstrations.jsonl", "comparisons.jsonl", "prompts.jsonl", "corpus.jsonl"
ASSISTANT_LAST = [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]
BOT_FIRST = [{"role": "bot", "content": "x"}, {"role": "user", "content": "Hi?"}]
EMPTY, TOO_LONG = "completions_nonempty", "completion_length"

# (edit, file, line, record id, field, rule): each edit breaks exactly one rule.
BROKEN = {
    "missing field": (_pop(D, 3, "category"), D, 4, "d-3", "category", "required_field"),
    "missing completions": (_pop(C, 0, "completions"), C, 1, "c-0", "completions", "required_field"),
    "wrong type": (_set(C, 1, "user_id", 7), C, 2, "c-1", "user_id", "required_field"),
    "mistyped id": (_set(P, 2, "id", 12), P, 3, "12", "id", "required_field"),
    "bad role": (_set(P, 2, "messages", BOT_FIRST), P, 3, "p-2", "messages", "roles_valid"),
    "last turn not user": (_set(D, 4, "messages", ASSISTANT_LAST), D, 5, "d-4", "messages", "last_turn_user"),
    "message not an object": (_set(D, 2, "messages", ["Hi?"]), D, 3, "d-2", "messages", "message_shape"),
    "no messages": (_set(P, 0, "messages", []), P, 1, "p-0", "messages", "messages_nonempty"),
    "empty turn": (_set(C, 6, "messages", conversation("  ")), C, 7, "c-6", "messages", "prompt_nonempty"),
    "bad category": (_set(C, 2, "category", "Poetry"), C, 3, "c-2", "category", "category_in_table1"),
    "empty completion": (_set(D, 5, "completion", " "), D, 6, "d-5", "completion", "completion_nonempty"),
    "empty completions entry": (_set(C, 5, "completions", ["a", "", "b"]), C, 6, "c-5", "completions", EMPTY),
    "empty corpus text": (_set(T, 1, "text", ""), T, 2, "t-1", "text", "text_nonempty"),
    "duplicate id": (_set(C, 4, "id", "c-2"), C, 5, "c-2", "id", "id_unique"),
    "duplicate prompt text": (_copy(P, 1, 6, "messages"), P, 7, "p-6", "messages", "prompt_unique"),
    "prompt too long": (_set(D, 0, "messages", conversation("x" * 400)), D, 1, "d-0", "messages", "prompt_length"),
    "completion too long": (_set(D, 7, "completion", "y" * 201), D, 8, "d-7", "completion", "completion_length"),
    "completions too long": (_set(C, 7, "completions", ["a", "b" * 300, "c"]), C, 8, "c-7", "completions", TOO_LONG),
    "text too long": (_set(T, 5, "text", "z" * 201), T, 6, "t-5", "text", "text_length"),
    "K < 2": (_one_completion, C, 4, "c-3", "completions", "k_at_least_2"),
    "ranks length mismatch": (_set(C, 4, "ranks", [1, 2]), C, 5, "c-4", "ranks", "ranks_one_int_per_completion"),
    "rank not an int": (_set(C, 4, "ranks", [1, "2", 3]), C, 5, "c-4", "ranks", "ranks_one_int_per_completion"),
    "all tied ranks": (_set(C, 0, "ranks", [2, 2, 2]), C, 1, "c-0", "ranks", "untied_pair"),
    "malformed JSON": (_raw(C, 5, b'{"id": "c-5", "user_id": "u-1", '), C, 6, "c-5", None, "record_parses"),
    "bad UTF-8": (_raw(P, 3, b'{"id": "p-3", "user_id": "u-3", "caf\xe9"}'), P, 4, "p-3", None, "record_parses"),
    "not an object": (_raw(T, 2, b'["t-2", "text"]'), T, 3, None, None, "record_parses"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_each_broken_rule_is_located(tmp_path: Path, case: str) -> None:
    edit, *where = BROKEN[case]
    records = clean_records()
    edit(records)
    file = where[0]  # only the broken file: the others pass in the clean test, and each costs GX time
    report = validate(tmp_path, write(tmp_path / "data", {file: records[file]}))

    assert not report.success
    assert tuple(where) in located(report), report.format()
    assert {f.rule for f in report.failures} == {where[-1]}, report.format()  # nothing else fired
    file, line, record_id, field, rule = where
    shown = f"{file}: line {line}" + (f", id {record_id}" if record_id else "") + (f", field {field}" if field else "")
    assert f"{shown}: {rule}" in report.format()
    assert json.loads((tmp_path / "metrics.json").read_text())["failures_by_rule"][rule] >= 1


def test_duplicates_name_both_lines(tmp_path: Path) -> None:
    records = clean_records()
    records[C][4]["id"] = "c-2"
    report = validate(tmp_path, write(tmp_path / "data", {C: records[C]}))
    assert {(f.line, f.rule) for f in report.failures} == {(3, "id_unique"), (5, "id_unique")}


def test_type_details_say_what_was_found(tmp_path: Path) -> None:
    records = clean_records()
    del records[C][1]["category"]
    records[C][2]["ranks"] = None
    report = validate(tmp_path, write(tmp_path / "data", {C: records[C]}))
    assert [(f.field, f.detail) for f in report.failures] == [
        ("category", "missing, not str"),
        ("ranks", "null, not list"),
    ]


def test_unreadable_lines_do_not_stop_the_file(tmp_path: Path) -> None:
    records = clean_records()
    records[C][0] = b"\xff\xfe not text"
    records[C][1] = b"{not json"
    records[C][6]["category"] = "Poetry"
    report = validate(tmp_path, write(tmp_path / "data", {C: records[C]}))

    assert located(report) == {
        (C, 1, None, None, "record_parses"),
        (C, 2, None, None, "record_parses"),
        (C, 7, "c-6", "category", "category_in_table1"),
    }
    assert "not valid UTF-8" in report.failures[0].detail and "not valid JSON" in report.failures[1].detail
    assert report.records[C] == 8


def test_missing_files_are_skipped_but_an_empty_folder_fails(tmp_path: Path) -> None:
    only = {P: clean_records()[P]}
    assert validate(tmp_path, write(tmp_path / "some", only)).records == {P: 8}

    (tmp_path / "empty").mkdir()
    report = validate(tmp_path, tmp_path / "empty")
    assert [f.rule for f in report.failures] == ["files_present"] and not report.success
    with pytest.raises(DataError, match="not found"):
        validate(tmp_path, tmp_path / "absent")


def test_report_is_capped(tmp_path: Path) -> None:
    records = clean_records()
    for record in records[P]:
        record["category"] = "Poetry"
    report = validate(tmp_path, write(tmp_path / "data", {P: records[P]}))
    text = report.format(max_lines=3)
    assert len(text.splitlines()) == 1 + 3 + 1
    assert text.endswith("... and 5 more")
    assert "prompts.jsonl: line 1, id p-0, field category: category_in_table1 (Poetry" in text


def skewed_prompts(n: int) -> Records:
    return {
        P: [{"id": f"p-{i}", "user_id": "u", "category": "Chat", "messages": conversation(f"Q{i}?")} for i in range(n)]
    }


@pytest.mark.parametrize("severity", ["error", "warning"])
def test_category_distribution_against_table1(tmp_path: Path, severity: str) -> None:
    params = section("validate_", kl_min_records=50, kl_threshold=0.1, kl_severity=severity)
    report = validate(tmp_path, write(tmp_path / "data", skewed_prompts(60)), params)

    assert located(report) == {(P, None, None, "category", "category_distribution")}
    assert report.failures[0].severity == severity
    assert report.success is (severity == "warning")
    assert "KL divergence from Table 1 is 2.4" in report.format()  # ln(1 / 0.084)
    # Below kl_min_records the check is skipped.
    assert validate(tmp_path, write(tmp_path / "few", skewed_prompts(49)), params).failures == []


def test_table1_shares_pass_the_kl_check(tmp_path: Path) -> None:
    categories = [c for c, share in TABLE1.items() for _ in range(round(share * 500))]
    records = {
        P: [
            {"id": f"p-{i}", "user_id": "u", "category": c, "messages": conversation(f"Q{i}?")}
            for i, c in enumerate(categories)
        ]
    }
    params = section("validate_", kl_min_records=100, kl_severity="error")
    assert validate(tmp_path, write(tmp_path / "data", records), params).failures == []


def split_records(split: str) -> Records:
    """The files that carry users and prompts are enough for the cross-split rules."""
    records = clean_records(tag=f"{split}-")
    return {D: records[D], C: records[C]}


def write_splits(folder: Path) -> Path:
    for split in SPLITS:
        write(folder / split, split_records(split))
    return folder


def test_clean_split_layout_passes(tmp_path: Path) -> None:
    report = validate(tmp_path, write_splits(tmp_path / "data"))
    assert report.success, report.format()
    assert len(report.records) == 2 * len(SPLITS) and report.records["valid/comparisons.jsonl"] == 8
    assert (tmp_path / "docs" / "index.html").is_file()


def test_user_in_two_splits(tmp_path: Path) -> None:
    data = write_splits(tmp_path / "data")
    records = split_records("test")
    records[C][2]["user_id"] = "train-u-1"
    write(data / "test", records)
    report = validate(tmp_path, data)

    assert not report.success
    assert ("test/comparisons.jsonl", 3, "test-c-2", "user_id", "user_id_in_one_split") in located(report)
    # Every record of the leaked user is named, in both splits.
    assert ("train/demonstrations.jsonl", 6, "train-d-5", "user_id", "user_id_in_one_split") in located(report)
    assert {f.rule for f in report.failures} == {"user_id_in_one_split"}
    assert "user_id is in train+test" in report.format()


def test_prompt_in_two_splits(tmp_path: Path) -> None:
    data = write_splits(tmp_path / "data")
    records = split_records("valid")
    records[D][0]["messages"] = split_records("train")[C][3]["messages"]
    write(data / "valid", records)
    report = validate(tmp_path, data)

    assert located(report) == {
        ("train/comparisons.jsonl", 4, "train-c-3", "messages", "prompt_in_one_split"),
        ("valid/demonstrations.jsonl", 1, "valid-d-0", "messages", "prompt_in_one_split"),
    }


def test_failure_format() -> None:
    failure = Failure(C, 12, "c-00012", "ranks", "ranks_one_int_per_completion", "ranks must hold one int")
    assert str(failure) == (
        "comparisons.jsonl: line 12, id c-00012, field ranks: ranks_one_int_per_completion (ranks must hold one int)"
    )
    assert str(Failure(P, None, None, "category", "category_distribution", "KL", "warning")) == (
        "prompts.jsonl: field category: category_distribution [warning] (KL)"
    )
