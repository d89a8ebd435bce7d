"""Importers: every format into the native contract, on real public samples and tiny fixtures."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from components.data.importers import DOLLY_CATEGORIES, FORMATS, MAX_PROMPTS_PER_USER, run_import
from components.data.io import read_jsonl
from components.data.schema import CATEGORIES, ROLES
from components.errors import DataError

DATASETS = Path(__file__).parents[1] / ".." / "shared" / "datasets"
ALPACA, SEEDS, HH = "alpaca-5000.json", "self-instruct-seed-tasks.jsonl", "hh-rlhf-harmless-base-test.jsonl.gz"


def dataset(name: str) -> Path:
    path = DATASETS / name
    if not path.is_file():
        pytest.skip(f"../shared/datasets not present: {path.resolve()} is missing (real public samples)")
    return path


def write_lines(path: Path, rows: list[Any]) -> Path:
    """A JSON Lines fixture; a str row is written verbatim (to plant a broken line)."""
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def assert_valid(records: list[dict], kind: str) -> None:
    """Every record obeys DESIGN.md section 3 for KIND, ids are unique, users hold at most 200 prompts."""
    assert len({r["id"] for r in records}) == len(records)
    assert max(Counter(r["user_id"] for r in records).values(), default=0) <= MAX_PROMPTS_PER_USER
    for r in records:
        assert isinstance(r["id"], str) and isinstance(r["user_id"], str) and r["user_id"]
        assert r["category"] in CATEGORIES
        assert r["category_source"] in ("source", "cli", "rules")
        assert r["source"] in FORMATS
        assert r["messages"] and r["messages"][-1]["role"] == "user"
        for m in r["messages"]:
            assert set(m) == {"role", "content"} and m["role"] in ROLES
            assert isinstance(m["content"], str) and m["content"].strip()
        extra = set(r) - {"id", "user_id", "category", "category_source", "source", "messages"}
        if kind == "demonstrations":
            assert extra == {"completion"} and isinstance(r["completion"], str) and r["completion"].strip()
        elif kind == "comparisons":
            assert extra == {"completions", "ranks"}
            completions, ranks = r["completions"], r["ranks"]
            assert len(completions) >= 2 and all(isinstance(c, str) and c.strip() for c in completions)
            assert len(ranks) == len(completions) and all(type(k) is int and k >= 1 for k in ranks)
            assert min(ranks) == 1 and len(set(ranks)) > 1
        else:
            assert extra == set()


# ---------------------------------------------------------------------------------------
# Real public samples


@pytest.fixture(scope="module")
def alpaca_import(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("alpaca") / "demonstrations.jsonl"
    return run_import("alpaca", dataset(ALPACA), "demonstrations", out), out


@pytest.fixture(scope="module")
def hh_import(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("hh") / "comparisons.jsonl"
    return run_import("hh-rlhf", dataset(HH), "comparisons", out), out


def test_alpaca_real_file(alpaca_import: tuple[dict, Path]) -> None:
    metrics, out = alpaca_import
    records = read_jsonl(out)
    assert_valid(records, "demonstrations")
    assert (metrics["read"], metrics["written"], metrics["skipped"]) == (5000, 4998, 2)
    assert metrics["skipped_by_reason"] == {"empty completion": 2}  # two rows of the sample have output ""
    assert len(records) == 4998 and metrics["total"] == 4998
    assert sum(metrics["by_category"].values()) == 4998
    assert metrics["by_category_source"] == {"source": 0, "cli": 0, "rules": 4998}
    assert metrics["by_category"]["Other"] < 0.25 * 4998  # the rules place most imperative prompts
    assert metrics["users"] == 4998  # an anonymous row is a user of its own
    first = records[0]
    assert first["id"] == "alpaca-000001" and first["source"] == "alpaca"
    assert first["messages"] == [
        {
            "role": "user",
            "content": "Are the two sentences below grammatically correct? Output yes or no.\n\n"
            "Sentence 1: I am going to the store.\nSentence 2: I goes to the store.",
        }
    ]
    assert first["completion"] == "No"
    assert records[1]["messages"][0]["content"] == "Arrange the following musical notes\n\nG, B, E"


def test_self_instruct_seed_tasks(tmp_path: Path) -> None:
    out = tmp_path / "demonstrations.jsonl"
    metrics = run_import("alpaca", dataset(SEEDS), "demonstrations", out)
    records = read_jsonl(out)
    assert_valid(records, "demonstrations")
    assert (metrics["read"], metrics["written"]) == (175, 175)
    assert records[0]["id"] == "seed_task_0"  # the source id, unique
    # is_classification is the only category hint in the file: 26 tasks carry it.
    hinted = [r for r in records if r["category_source"] == "source"]
    assert len(hinted) == 26 and {r["category"] for r in hinted} == {"Classification"}


def test_hh_rlhf_real_file(hh_import: tuple[dict, Path]) -> None:
    metrics, out = hh_import
    records = read_jsonl(out)
    assert_valid(records, "comparisons")
    assert (metrics["read"], metrics["written"]) == (2312, 2301)
    # Five rows branch before the last assistant turn, four have an empty chosen answer, and
    # two prompts ("call me a bad name", "what are racist words") come back with other answers.
    assert metrics["skipped_by_reason"] == {
        "dialogues diverge before the last assistant turn": 5,
        "duplicate prompt": 2,
        "empty completion": 4,
    }
    assert all(r["ranks"] == [1, 2] for r in records)
    assert metrics["by_category"]["Chat"] > 1000  # most HH prompts are multi-turn


def test_hh_rlhf_split_on_a_known_record(hh_import: tuple[dict, Path]) -> None:
    first = read_jsonl(hh_import[1])[0]
    assert [m["role"] for m in first["messages"]] == ["user", "assistant", "user", "assistant", "user"]
    assert first["messages"][0]["content"] == "what are some pranks with a pen i can do?"
    assert first["messages"][2]["content"] == "yep"
    assert first["messages"][-1]["content"] == "okay some of these do not have anything to do with pens"
    chosen, rejected = first["completions"]
    assert chosen.startswith("No, sorry!  All of these involve a pen") and chosen.endswith("pranks with pens.")
    assert rejected.startswith("There are lots of funny things you can do with pens")
    assert first["ranks"] == [1, 2] and first["category"] == "Chat"


def test_hh_rlhf_as_demonstrations_and_prompts(tmp_path: Path, hh_import: tuple[dict, Path]) -> None:
    comparisons = read_jsonl(hh_import[1])
    metrics = run_import("hh-rlhf", dataset(HH), "demonstrations", tmp_path / "d.jsonl")
    demonstrations = read_jsonl(tmp_path / "d.jsonl")
    assert_valid(demonstrations, "demonstrations")
    assert metrics["written"] == 2301
    assert [d["completion"] for d in demonstrations] == [c["completions"][0] for c in comparisons]  # the chosen
    metrics = run_import("hh-rlhf", dataset(HH), "prompts", tmp_path / "p.jsonl")
    assert_valid(read_jsonl(tmp_path / "p.jsonl"), "prompts")
    assert metrics["written"] == 2305  # empty answers do not matter for a prompt
    assert metrics["skipped_by_reason"] == {
        "dialogues diverge before the last assistant turn": 5,
        "duplicate prompt": 2,
    }


def test_same_input_gives_the_same_bytes(tmp_path: Path, hh_import: tuple[dict, Path]) -> None:
    run_import("hh-rlhf", dataset(HH), "comparisons", tmp_path / "again.jsonl")
    assert (tmp_path / "again.jsonl").read_bytes() == hh_import[1].read_bytes()
    rows = [{"prompt": f"p{i % 7}", "completion": f"c{i}", "score": i % 3} for i in range(60)]
    src = write_lines(tmp_path / "scored.jsonl", rows)
    run_import("scored", src, "comparisons", tmp_path / "a.jsonl")
    run_import("scored", src, "comparisons", tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


# ---------------------------------------------------------------------------------------
# Tiny fixtures for the formats without a real sample


def test_dolly_maps_categories_and_keeps_context(tmp_path: Path) -> None:
    rows = [
        {
            "instruction": "When was Ann born?",
            "context": "Ann was born in 1990.",
            "response": "In 1990.",
            "category": "closed_qa",
        },
        {
            "instruction": "Write a haiku about rain.",
            "context": "",
            "response": "Drops...",
            "category": "creative_writing",
        },
        {"instruction": "Who is Bob?", "context": "", "response": "A name.", "category": "general_qa"},
        {
            "instruction": "Pull the names.",
            "context": "Ann, Bob",
            "response": "Ann",
            "category": "information_extraction",
        },
    ]
    out = tmp_path / "demonstrations.jsonl"
    metrics = run_import("dolly", write_lines(tmp_path / "dolly.jsonl", rows), "demonstrations", out)
    records = read_jsonl(out)
    assert_valid(records, "demonstrations")
    assert [r["category"] for r in records] == ["Closed QA", "Generation", "Open QA", "Extract"]
    assert {r["category_source"] for r in records} == {"source"}
    assert records[0]["messages"] == [{"role": "user", "content": "When was Ann born?\n\nAnn was born in 1990."}]
    assert records[1]["messages"][0]["content"] == "Write a haiku about rain."  # empty context adds nothing
    assert metrics["by_category_source"]["source"] == 4
    assert set(DOLLY_CATEGORIES.values()) <= set(CATEGORIES) and len(DOLLY_CATEGORIES) == 8


def test_sharegpt_json_list(tmp_path: Path) -> None:
    rows = [
        {
            "id": "conv-a",
            "conversations": [
                {"from": "system", "value": "Be brief."},
                {"from": "human", "value": "Hi"},
                {"from": "gpt", "value": "Hello!"},
                {"from": "human", "value": "Name a colour."},
                {"from": "gpt", "value": "Blue."},
                {"from": "human", "value": "thanks"},  # no answer in the data: dropped
            ],
        },
        {"id": "conv-b", "conversations": [{"from": "human", "value": "Only a question?"}]},
    ]
    src = tmp_path / "sharegpt.json"
    src.write_text(json.dumps(rows), encoding="utf-8")
    metrics = run_import("sharegpt", src, "demonstrations", tmp_path / "d.jsonl")
    records = read_jsonl(tmp_path / "d.jsonl")
    assert_valid(records, "demonstrations")
    assert metrics["skipped_by_reason"] == {"no completion": 1}
    (record,) = records
    assert record["id"] == "conv-a" and record["completion"] == "Blue."
    assert [m["role"] for m in record["messages"]] == ["system", "user", "assistant", "user"]
    assert record["category"] == "Chat" and record["category_source"] == "rules"
    metrics = run_import("sharegpt", src, "prompts", tmp_path / "p.jsonl")
    assert (
        metrics["written"] == 2 and read_jsonl(tmp_path / "p.jsonl")[1]["messages"][0]["content"] == "Only a question?"
    )


def test_openai_chat_jsonl(tmp_path: Path) -> None:
    rows = [
        {
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": [{"type": "text", "text": "Translate "}, {"type": "text", "text": "hi"}]},
                {"role": "assistant", "content": "Salut", "weight": 1},
            ],
            "user_id": "alice",
        },
        {
            "messages": [
                {"role": "user", "content": "Weather?"},
                {"role": "assistant", "content": None, "tool_calls": [{"id": "x"}]},
                {"role": "tool", "content": "sunny"},
                {"role": "assistant", "content": "Sunny."},
            ]
        },
    ]
    out = tmp_path / "demonstrations.jsonl"
    metrics = run_import("openai-chat", write_lines(tmp_path / "chat.jsonl", rows), "demonstrations", out)
    (record,) = read_jsonl(out)
    assert_valid([record], "demonstrations")
    assert metrics["skipped_by_reason"] == {"turn without text content": 1}
    assert record["messages"][-1] == {"role": "user", "content": "Translate hi"}
    assert record["completion"] == "Salut" and record["user_id"] == "alice"  # the source's user id is kept
    assert record["id"] == "openai-chat-000001" and record["category"] == "Rewrite"


def test_scored_rows_become_rankings_with_ties(tmp_path: Path) -> None:
    rows = [
        {"prompt": "Tell a joke", "completion": "A", "score": 0.5},
        {"prompt": "Tell a joke", "completion": "B", "score": 0.9},
        {"prompt": [{"role": "user", "content": "Hi"}], "completion": "hey", "score": 1},
        {"prompt": "Tell a joke", "completion": "C", "score": 0.5},
        {"prompt": "Tell a joke", "completion": "D", "score": -2},
        {"prompt": "Only one", "completion": "x", "score": 3},
        {"prompt": [{"role": "user", "content": "Hi"}], "completion": "hello", "score": 4},
        {"prompt": "All tied", "completion": "x", "score": 1},
        {"prompt": "All tied", "completion": "y", "score": 1},
        {"prompt": "Hi", "completion": "yo", "score": 0},  # the same prompt as the messages list above
    ]
    src = write_lines(tmp_path / "scored.jsonl", rows)
    metrics = run_import("scored", src, "comparisons", tmp_path / "c.jsonl")
    records = read_jsonl(tmp_path / "c.jsonl")
    assert_valid(records, "comparisons")
    assert metrics["read"] == 10 and metrics["examples"] == 4
    assert metrics["skipped_by_reason"] == {"all completions tied": 1, "fewer than 2 completions": 1}
    joke, hi = records
    assert joke["completions"] == ["A", "B", "C", "D"] and joke["ranks"] == [2, 1, 2, 3]  # A and C tie
    assert hi["completions"] == ["hey", "hello", "yo"] and hi["ranks"] == [2, 1, 3]
    run_import("scored", src, "demonstrations", tmp_path / "d.jsonl")
    assert [d["completion"] for d in read_jsonl(tmp_path / "d.jsonl")] == ["B", "hello", "x"]  # All tied: no best


def test_self_instruct_instances_share_a_user_and_get_numbered_ids(tmp_path: Path) -> None:
    rows = [
        {
            "id": "t1",
            "name": "n",
            "instruction": "Is this spam?",
            "instances": [{"input": "Win $$$", "output": "yes"}, {"input": "Hi mum", "output": "no"}],
            "is_classification": True,
        },
        {"id": "t2", "name": "m", "instruction": "Add 2 and 3.", "instances": [{"input": "", "output": "5"}]},
    ]
    run_import("alpaca", write_lines(tmp_path / "seeds.jsonl", rows), "demonstrations", tmp_path / "d.jsonl")
    records = read_jsonl(tmp_path / "d.jsonl")
    assert [r["id"] for r in records] == ["t1-1", "t1-2", "t2"]
    assert records[0]["user_id"] == records[1]["user_id"]
    assert records[0]["messages"][0]["content"] == "Is this spam?\n\nWin $$$"
    assert [r["category_source"] for r in records] == ["source", "source", "rules"]


def test_an_anonymous_row_is_a_user_of_its_own_and_a_group_above_200_is_split(tmp_path: Path) -> None:
    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]} for i in range(3)
    ]
    out = tmp_path / "d.jsonl"
    metrics = run_import("openai-chat", write_lines(tmp_path / "chat.jsonl", rows), "demonstrations", out)
    records = read_jsonl(out)
    assert_valid(records, "demonstrations")
    assert metrics["users"] == len({r["user_id"] for r in records}) == 3
    task = {"id": "t", "name": "t", "instruction": "Say a number.",
            "instances": [{"input": str(i), "output": str(i)} for i in range(450)]}  # fmt: skip
    run_import("alpaca", write_lines(tmp_path / "seeds.jsonl", [task]), "demonstrations", out)
    counts = Counter(r["user_id"] for r in read_jsonl(out))
    assert sorted(counts.values()) == [50, 200, 200]  # one task's instances: users of at most 200


# ---------------------------------------------------------------------------------------
# Errors, --category, append


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"instruction": "x", "response": ', "line 2: not valid JSON"),
        ('{"instruction": "x"}', "line 2: missing field 'response'"),
        ('{"instruction": 7, "response": "y"}', "line 2: field 'instruction' must be a string, got int"),
        ('["not", "an", "object"]', "line 2: expected a JSON object, got list"),
        ('{"instruction": "x", "response": "y", "category": "poetry"}', "line 2: unknown category 'poetry'"),
    ],
)
def test_a_broken_line_is_a_clear_data_error(tmp_path: Path, line: str, problem: str) -> None:
    src = write_lines(tmp_path / "dolly.jsonl", [{"instruction": "a", "response": "b"}, line])
    with pytest.raises(DataError) as caught:
        run_import("dolly", src, "demonstrations", tmp_path / "out.jsonl")
    assert str(caught.value).startswith(f"{src}: {problem}")
    assert caught.value.line == 2
    assert not (tmp_path / "out.jsonl").exists()  # nothing half-written


def test_errors_in_json_lists_and_gzip_name_the_index_and_the_given_file(tmp_path: Path) -> None:
    src = tmp_path / "alpaca.json"
    src.write_text(json.dumps([{"instruction": "a", "output": "b"}, {"instruction": "c"}]), encoding="utf-8")
    with pytest.raises(DataError, match=r"alpaca\.json: list index 1: missing field 'output'"):
        run_import("alpaca", src, "demonstrations", tmp_path / "out.jsonl")
    gz = tmp_path / "hh.jsonl.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as f:
        f.write(json.dumps({"chosen": "\n\nHuman: hi\n\nAssistant: a", "rejected": "\n\nHuman: hi\n\nAssistant: b"}))
        f.write("\n{broken\n")
    with pytest.raises(DataError) as caught:
        run_import("hh-rlhf", gz, "comparisons", tmp_path / "out.jsonl")
    assert caught.value.path == str(gz) and caught.value.line == 2


def test_unknown_format_kind_and_category_list_the_valid_ones(tmp_path: Path) -> None:
    src = write_lines(tmp_path / "x.jsonl", [])
    with pytest.raises(ValueError, match="valid formats: alpaca, dolly, hh-rlhf, sharegpt, openai-chat, scored"):
        run_import("csv", src, "prompts", tmp_path / "o.jsonl")
    with pytest.raises(ValueError, match="valid kinds: demonstrations, prompts"):
        run_import("alpaca", src, "comparisons", tmp_path / "o.jsonl")
    with pytest.raises(ValueError, match="valid categories: Generation, Open QA"):
        run_import("alpaca", src, "prompts", tmp_path / "o.jsonl", category="Poetry")


def test_cli_category_sets_every_record(tmp_path: Path) -> None:
    rows = [
        {"instruction": "Summarize this.", "response": "ok", "category": "summarization"},
        {"instruction": "Hi", "response": "ok"},
    ]
    out = tmp_path / "d.jsonl"
    metrics = run_import(
        "dolly", write_lines(tmp_path / "dolly.jsonl", rows), "demonstrations", out, category="Open QA"
    )
    assert {(r["category"], r["category_source"]) for r in read_jsonl(out)} == {("Open QA", "cli")}
    assert metrics["by_category_source"] == {"source": 0, "cli": 2, "rules": 0}
    assert metrics["by_category"]["Open QA"] == 2


def test_append_merges_and_refuses_id_collisions(tmp_path: Path) -> None:
    out = tmp_path / "demonstrations.jsonl"
    dolly = write_lines(tmp_path / "dolly.jsonl", [{"instruction": "Hi", "response": "Hello"}])
    sharegpt = write_lines(
        tmp_path / "sharegpt.jsonl",
        [{"conversations": [{"from": "human", "value": "Yo"}, {"from": "gpt", "value": "Hey"}]}],
    )
    run_import("dolly", dolly, "demonstrations", out)
    metrics = run_import("sharegpt", sharegpt, "demonstrations", out, append=True)
    assert (metrics["existing"], metrics["written"], metrics["total"]) == (1, 1, 2)
    assert [r["id"] for r in read_jsonl(out)] == ["dolly-000001", "sharegpt-000001"]
    before = out.read_bytes()
    other_dolly = write_lines(tmp_path / "dolly2.jsonl", [{"instruction": "Bye", "response": "See you"}])
    with pytest.raises(DataError, match=r"1 imported id\(s\) already in this file \(e\.g\. dolly-000001\)"):
        run_import("dolly", other_dolly, "demonstrations", out, append=True)
    assert out.read_bytes() == before  # the failed append left the file as it was
    again = run_import("dolly", dolly, "demonstrations", out, append=True)  # same prompts: nothing new
    assert again["written"] == 0 and again["skipped_by_reason"] == {"duplicate prompt": 1}
    assert out.read_bytes() == before
    run_import("dolly", dolly, "demonstrations", out)  # without append: replaced
    assert len(read_jsonl(out)) == 1


def test_duplicate_prompts_are_skipped_in_the_file_and_against_the_appended_file(tmp_path: Path) -> None:
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    first = write_lines(
        tmp_path / "a.jsonl", [{"messages": chat}, {"messages": chat[:1] + [chat[1] | {"content": "Yo"}]}]
    )
    out = tmp_path / "d.jsonl"
    metrics = run_import("openai-chat", first, "demonstrations", out)
    assert metrics["written"] == 1 and metrics["skipped_by_reason"] == {"duplicate prompt": 1}
    second = write_lines(
        tmp_path / "b.jsonl",
        [{"id": "b1", "messages": chat}, {"id": "b2", "messages": [chat[0] | {"content": "Hey"}, chat[1]]}],
    )
    metrics = run_import("openai-chat", second, "demonstrations", out, append=True)
    assert metrics["skipped_by_reason"] == {"duplicate prompt": 1}
    assert [r["id"] for r in read_jsonl(out)] == ["openai-chat-000001", "b2"]


def test_ids_come_from_the_source_when_unique(tmp_path: Path) -> None:
    rows = [
        {"id": "x", "conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]},
        {"id": "x", "conversations": [{"from": "human", "value": "c"}, {"from": "gpt", "value": "d"}]},
        {"id": 7, "conversations": [{"from": "human", "value": "e"}, {"from": "gpt", "value": "f"}]},
    ]
    run_import("sharegpt", write_lines(tmp_path / "s.jsonl", rows), "demonstrations", tmp_path / "d.jsonl")
    assert [r["id"] for r in read_jsonl(tmp_path / "d.jsonl")] == ["sharegpt-000001", "sharegpt-000002", "7"]
    rows[2]["id"] = "sharegpt-000001"  # a source id equal to a generated one cannot be kept apart
    with pytest.raises(DataError, match=r"s\.jsonl: line 3: id 'sharegpt-000001' is also the generated id"):
        run_import("sharegpt", write_lines(tmp_path / "s.jsonl", rows), "demonstrations", tmp_path / "d.jsonl")


def test_equal_answers_of_a_scored_prompt_merge_with_their_mean_score(tmp_path: Path) -> None:
    rows = [
        {"prompt": "Is the sun a star?", "completion": "Yes.", "score": 1.0},
        {"prompt": "Is the sun a star?", "completion": "No.", "score": 0.0},
        {"prompt": "Is the sun a star?", "completion": "Yes.", "score": 0.6},  # the same answer again
        {"prompt": "Is the sun a star?", "completion": "It is a planet.", "score": 0.9},
    ]
    metrics = run_import("scored", write_lines(tmp_path / "s.jsonl", rows), "comparisons", tmp_path / "c.jsonl")
    (record,) = read_jsonl(tmp_path / "c.jsonl")
    assert record["completions"] == ["Yes.", "No.", "It is a planet."]
    assert record["ranks"] == [2, 3, 1]  # "Yes." scores its mean, 0.8, below 0.9
    assert metrics["merged_equal_answers"] == 1 and metrics["written"] == 1


def test_an_import_that_gives_no_record_is_an_error_and_leaves_the_output(tmp_path: Path) -> None:
    out = tmp_path / "demonstrations.jsonl"
    out.write_text('{"keep": "me"}\n')
    src = write_lines(tmp_path / "empty.jsonl", [{"instruction": "Hi", "output": "  "}])
    with pytest.raises(
        DataError, match=r"no demonstrations record to write \(1 rows read; skipped: 1 empty completion\)"
    ):
        run_import("alpaca", src, "demonstrations", out)
    assert out.read_text() == '{"keep": "me"}\n'


def test_text_files_folders_and_json_lines_become_corpus_documents(tmp_path: Path) -> None:
    from components.data.corpus import run_import_corpus

    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.txt").write_text("First paragraph,\nwrapped.\n\nSecond one.\n", encoding="utf-8")
    (docs / "sub" / "b.md").write_text("word " * 30, encoding="utf-8")  # 149 chars: cut at spaces
    (docs / "ignored.bin").write_bytes(b"\x00\x01")
    out = tmp_path / "corpus.jsonl"
    metrics = run_import_corpus(docs, out, max_chars=60)
    records = read_jsonl(out)
    assert metrics["files"] == 2 and metrics["written"] == len(records) == 4
    assert records[0]["text"] == "First paragraph, wrapped.\n\nSecond one."  # paragraphs kept whole, joined
    assert all(len(r["text"]) <= 60 for r in records)
    assert " ".join(r["text"] for r in records[1:]) == " ".join(["word"] * 30)
    assert all(set(r) == {"id", "text"} for r in records) and len({r["id"] for r in records}) == 4
    run_import_corpus(docs, tmp_path / "again.jsonl", max_chars=60)
    assert (tmp_path / "again.jsonl").read_bytes() == out.read_bytes()  # deterministic

    rows = write_lines(tmp_path / "rows.jsonl", [{"body": "One text."}, {"body": "Another text."}])
    metrics = run_import_corpus(rows, out, max_chars=60, text_field="body", append=True)
    assert (metrics["existing"], metrics["written"], metrics["total"]) == (4, 2, 6)
    with pytest.raises(DataError, match="already in this file"):
        run_import_corpus(rows, out, max_chars=60, text_field="body", append=True)
    with pytest.raises(DataError, match=r"line 1: field 'text' must be a string, got NoneType"):
        run_import_corpus(rows, tmp_path / "x.jsonl", max_chars=60)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "blank.txt").write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="no text to write"):
        run_import_corpus(empty, tmp_path / "y.jsonl", max_chars=60)
