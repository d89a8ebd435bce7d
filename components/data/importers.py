"""Importers: common public instruction and preference formats into native records.

`run_import(fmt, src, kind, out)` reads SRC in one of the FORMATS and writes records of
KIND (DESIGN.md section 3) to OUT, atomically. Each format is one small reader that turns
source rows into `Example`s (a prompt, its completions and optional ranks); everything
else is shared: loading (JSON list or JSON Lines, optionally gzipped), projecting an
example onto the kind, ids, synthetic users, categories, append and metrics.

Source problems (missing field, wrong type, bad JSON) raise `io.DataError` naming the file
and the line (JSON Lines) or list index (JSON list). Rows that are well-formed but cannot
become a record of the kind (an empty answer, a tied comparison, a dialogue whose two
branches diverge early) are skipped and counted per reason in the metrics.

Output is deterministic: the same input file and arguments give the same bytes.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.data.categorize import categorize
from components.data.io import dumps, iter_jsonl, read_jsonl, write_jsonl
from components.data.schema import CATEGORIES, prompt_text
from components.errors import DataError
from components.hashing import file_hash

# The paper limits each user id to 200 prompts; synthetic users follow the same cap.
MAX_PROMPTS_PER_USER = 200

# Dolly's eight categories onto Table 1's ten. open_qa and general_qa are both questions
# answered from general knowledge (general_qa the more open-ended ones), so both are Open
# QA; closed_qa answers from the given context; information_extraction pulls facts out of
# a text (Extract); creative_writing is Generation; the other three keep their names.
DOLLY_CATEGORIES: dict[str, str] = {
    "open_qa": "Open QA",
    "general_qa": "Open QA",
    "closed_qa": "Closed QA",
    "classification": "Classification",
    "brainstorming": "Brainstorming",
    "information_extraction": "Extract",
    "summarization": "Summarization",
    "creative_writing": "Generation",
}

# Role names per chat format, onto the native roles. Tool and function turns have no
# native equivalent: rows with them are skipped (counted), other unknown roles are errors.
OPENAI_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}
TOOL_ROLES = frozenset({"tool", "function", "ipython", "observation"})

# One key per spelling we accept for a category: Table 1 names and Dolly names, compared
# case-insensitively with "_" read as a space.
_CATEGORY_NAMES: dict[str, str] = {
    **{name.lower(): name for name in CATEGORIES},
    **{name.replace("_", " "): value for name, value in DOLLY_CATEGORIES.items()},
}


# ---------------------------------------------------------------------------------------
# Where a row came from, what a reader yields


@dataclass(frozen=True)
class Loc:
    """A row's place in the source: a JSON Lines line (1-based) or a JSON list index (0-based)."""

    path: Path
    line: int | None = None
    index: int | None = None

    def error(self, problem: str) -> DataError:
        if self.index is not None:
            problem = f"list index {self.index}: {problem}"
        return DataError(self.path, self.line, problem)


@dataclass
class Example:
    """One candidate record before it is projected onto a kind."""

    loc: Loc
    messages: list[dict]
    completions: list[str] = field(default_factory=list)
    ranks: list[int] | None = None  # None: the completions are unranked (at most one is used)
    source_id: str | None = None
    user_id: str | None = None
    category: str | None = None  # a Table 1 name, mapped from the source
    group: str | None = None  # records of one group share a synthetic user (default: none)
    merged: int = 0  # source answers folded into an equal answer of the same prompt (scored rows)


@dataclass(frozen=True)
class Skipped:
    """A source row that is well-formed but gives no record; the reason is counted."""

    reason: str


class _Skip(Exception):
    """Raised inside row parsers and projection; turned into a counted skip."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


Row = tuple[Loc, dict]
Reader = Callable[[Iterable[Row]], Iterator[Example | Skipped]]


@dataclass(frozen=True)
class Format:
    reader: Reader
    kinds: tuple[str, ...]
    description: str


# ---------------------------------------------------------------------------------------
# Loading: JSON list or JSON Lines, optionally gzipped


@contextmanager
def _uncompressed(src: Path) -> Iterator[Path]:
    """SRC itself, or for .gz a decompressed temporary copy (so io.iter_jsonl reads it)."""
    if src.suffix != ".gz":
        yield src
        return
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / src.stem
        try:
            with gzip.open(src, "rb") as fin, open(plain, "wb") as fout:
                shutil.copyfileobj(fin, fout)
        except (OSError, EOFError) as e:
            raise DataError(src, None, f"not a readable gzip file ({e})") from None
        yield plain


def _starts_with_list(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(4096).decode("utf-8", errors="ignore")
    return head.lstrip("\ufeff \t\r\n").startswith("[")


def _type(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _json_list_rows(plain: Path, src: Path) -> Iterator[Row]:
    try:
        data = json.loads(plain.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise DataError(src, None, f"not valid UTF-8 ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise DataError(src, e.lineno, f"not valid JSON ({e.msg}, column {e.colno})") from None
    if not isinstance(data, list):
        raise DataError(src, None, f"expected a JSON list of objects, got {_type(data)}")
    for index, value in enumerate(data):
        loc = Loc(src, index=index)
        if not isinstance(value, dict):
            raise loc.error(f"expected a JSON object, got {_type(value)}")
        yield loc, value


def _jsonl_rows(plain: Path, src: Path) -> Iterator[Row]:
    lines = iter_jsonl(plain)
    while True:
        try:
            line, value = next(lines)
        except StopIteration:
            return
        except DataError as e:  # name the file the user gave, not our decompressed copy
            raise DataError(src, e.line, e.problem) from None
        loc = Loc(src, line=line)
        if not isinstance(value, dict):
            raise loc.error(f"expected a JSON object, got {_type(value)}")
        yield loc, value


def iter_rows(src: Path) -> Iterator[Row]:
    """Every JSON object in SRC with its location: a JSON list or JSON Lines, .gz allowed."""
    with _uncompressed(src) as plain:
        if _starts_with_list(plain):
            yield from _json_list_rows(plain, src)
        else:
            yield from _jsonl_rows(plain, src)


# ---------------------------------------------------------------------------------------
# Field access with errors that say which field is wrong


def _text(row: dict, loc: Loc, key: str, default: str | None = None, prefix: str = "") -> str:
    """A string field; null or absent gives `default`, or an error when it is required."""
    value = row.get(key)
    if value is None:
        if default is None:
            raise loc.error(f"missing field '{prefix}{key}'")
        return default
    if not isinstance(value, str):
        raise loc.error(f"field '{prefix}{key}' must be a string, got {_type(value)}")
    return value


def _list(row: dict, loc: Loc, key: str) -> list:
    value = row.get(key)
    if value is None:
        raise loc.error(f"missing field '{key}'")
    if not isinstance(value, list):
        raise loc.error(f"field '{key}' must be a list, got {_type(value)}")
    return value


def _object(value: Any, loc: Loc, name: str) -> dict:
    if not isinstance(value, dict):
        raise loc.error(f"field '{name}' must be an object, got {_type(value)}")
    return value


def _ident(row: dict, loc: Loc, key: str) -> str | None:
    """An optional id-like field (string or integer), as a string."""
    value = row.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise loc.error(f"field '{key}' must be a string or an integer, got {_type(value)}")
    return str(value)


def _flag(row: dict, loc: Loc, key: str) -> bool:
    value = row.get(key, False)
    if not isinstance(value, bool):
        raise loc.error(f"field '{key}' must be true or false, got {_type(value)}")
    return value


def _score(row: dict, loc: Loc) -> float:
    value = row.get("score")
    if value is None:
        raise loc.error("missing field 'score'")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise loc.error(f"field 'score' must be a finite number, got {value!r}")
    return float(value)


def _row_category(row: dict, loc: Loc) -> str | None:
    """The row's own `category` (Table 1 or Dolly name) mapped onto Table 1, if it has one."""
    value = _text(row, loc, "category", "")
    if not value.strip():
        return None
    mapped = _CATEGORY_NAMES.get(value.strip().lower().replace("_", " "))
    if mapped is None:
        valid = ", ".join(list(CATEGORIES) + list(DOLLY_CATEGORIES))
        raise loc.error(f"unknown category {value!r} (valid: {valid})")
    return mapped


def _content(turn: dict, loc: Loc, name: str, key: str) -> str:
    """A turn's text: a string, or OpenAI's list of {type: text, text} parts joined."""
    value = turn.get(key)
    if isinstance(value, str):
        return value
    if value is None and key in turn:
        raise _Skip("turn without text content")  # e.g. an assistant turn that only calls tools
    if value is None:
        raise loc.error(f"missing field '{name}.{key}'")
    if not isinstance(value, list):
        raise loc.error(f"field '{name}.{key}' must be a string or a list of parts, got {_type(value)}")
    texts = []
    for i, part in enumerate(value):
        part = _object(part, loc, f"{name}.{key}[{i}]")
        if part.get("type") != "text":
            raise _Skip("turn without text content")
        texts.append(_text(part, loc, "text", prefix=f"{name}.{key}[{i}]."))
    return "".join(texts)


def _turns(row: dict, loc: Loc, key: str, role_key: str, content_key: str, roles: dict[str, str]) -> list[dict]:
    """A chat transcript as native messages."""
    messages = []
    for i, turn in enumerate(_list(row, loc, key)):
        name = f"{key}[{i}]"
        turn = _object(turn, loc, name)
        role = _text(turn, loc, role_key, prefix=f"{name}.")
        if role in TOOL_ROLES:
            raise _Skip("tool or function turn")
        if role not in roles:
            raise loc.error(f"field '{name}.{role_key}' is {role!r} (valid: {', '.join(roles)})")
        messages.append({"role": roles[role], "content": _content(turn, loc, name, content_key)})
    return messages


# ---------------------------------------------------------------------------------------
# Shared shapes


def _instruction_prompt(instruction: str, extra: str) -> list[dict]:
    """Alpaca-style instruction + input (or Dolly context) as one user message."""
    content = instruction.strip()
    if extra.strip():
        content += "\n\n" + extra.strip()
    return [{"role": "user", "content": content}]


def _split_last_assistant(messages: list[dict]) -> tuple[list[dict], list[str]]:
    """Prompt (turns before the last assistant turn) and completion (that turn).

    Turns after the last assistant turn have no answer in the data, so they are dropped; a
    transcript without an assistant turn is all prompt.
    """
    for i in range(len(messages) - 1, -1, -1):
        if messages[i]["role"] == "assistant":
            return messages[:i], [messages[i]["content"]]
    return messages, []


def _dense_ranks(scores: list[float]) -> list[int]:
    """1 for the highest score; equal scores share a rank (a tie); the next score gets the next int."""
    rank = {score: i + 1 for i, score in enumerate(sorted(set(scores), reverse=True))}
    return [rank[score] for score in scores]


def _parsed(rows: Iterable[Row], parse: Callable[[Loc, dict], Any]) -> Iterator[tuple[Loc, dict, Any] | Skipped]:
    """Each row with what PARSE made of it, or a Skipped with the reason PARSE gave for passing it over."""
    for loc, row in rows:
        try:
            yield loc, row, parse(loc, row)
        except _Skip as skip:
            yield Skipped(skip.reason)


def _per_row(parse: Callable[[Loc, dict], list[Example]]) -> Reader:
    """A reader from a row parser; also picks up the optional `user_id` and `category` every format may carry."""

    def reader(rows: Iterable[Row]) -> Iterator[Example | Skipped]:
        for item in _parsed(rows, parse):
            if isinstance(item, Skipped):
                yield item
                continue
            loc, row, examples = item
            user_id, category = _ident(row, loc, "user_id"), _row_category(row, loc)
            for example in examples:
                example.user_id = user_id if user_id is not None else example.user_id
                example.category = category if category is not None else example.category
                yield example

    return reader


# ---------------------------------------------------------------------------------------
# One parser per format


def _self_instruct(loc: Loc, row: dict) -> list[Example]:
    """Self-Instruct seed task: one example per instance; is_classification hints the category."""
    instruction = _text(row, loc, "instruction")
    instances = _list(row, loc, "instances")
    if not instances:
        raise _Skip("task without instances")
    task = _ident(row, loc, "id")
    hint = "Classification" if _flag(row, loc, "is_classification") else None
    examples = []
    for j, instance in enumerate(instances):
        name = f"instances[{j}]"
        instance = _object(instance, loc, name)
        prompt = _instruction_prompt(instruction, _text(instance, loc, "input", "", prefix=f"{name}."))
        completion = _text(instance, loc, "output", prefix=f"{name}.")
        source_id = task if task is None or len(instances) == 1 else f"{task}-{j + 1}"
        # One task's instances share an instruction: keep them with one user (no split leakage).
        examples.append(Example(loc, prompt, [completion], source_id=source_id, category=hint, group=task))
    return examples


def _alpaca(loc: Loc, row: dict) -> list[Example]:
    if "instances" in row:
        return _self_instruct(loc, row)
    prompt = _instruction_prompt(_text(row, loc, "instruction"), _text(row, loc, "input", ""))
    return [Example(loc, prompt, [_text(row, loc, "output")])]


def _dolly(loc: Loc, row: dict) -> list[Example]:
    # Dolly's `category` is mapped by _per_row through DOLLY_CATEGORIES.
    prompt = _instruction_prompt(_text(row, loc, "instruction"), _text(row, loc, "context", ""))
    return [Example(loc, prompt, [_text(row, loc, "response")])]


_HH_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):")


def _hh_dialogue(row: dict, loc: Loc, key: str) -> list[dict]:
    parts = _HH_TURN.split(_text(row, loc, key))
    if parts[0].strip():
        raise loc.error(f"field '{key}' must start with a 'Human:' turn")
    if len(parts) < 3:
        raise loc.error(f"field '{key}' has no 'Human:' / 'Assistant:' turns")
    # The text after "Human:" starts with a space and may end with blanks: format artifacts.
    return [
        {"role": "user" if speaker == "Human" else "assistant", "content": content.strip()}
        for speaker, content in zip(parts[1::2], parts[2::2], strict=True)
    ]


def _hh_rlhf(loc: Loc, row: dict) -> list[Example]:
    """Anthropic HH: the shared prefix is the prompt, the two last assistant turns are ranked 1 (chosen), 2."""
    chosen, rejected = _hh_dialogue(row, loc, "chosen"), _hh_dialogue(row, loc, "rejected")
    if chosen[-1]["role"] != "assistant" or rejected[-1]["role"] != "assistant":
        raise _Skip("dialogue does not end with an assistant turn")
    prompt = chosen[:-1]
    if prompt != rejected[:-1]:
        raise _Skip("dialogues diverge before the last assistant turn")
    if not prompt or prompt[-1]["role"] != "user":
        raise _Skip("prompt does not end with a human turn")
    return [Example(loc, prompt, [chosen[-1]["content"], rejected[-1]["content"]], ranks=[1, 2])]


def _sharegpt(loc: Loc, row: dict) -> list[Example]:
    turns = _turns(row, loc, "conversations", "from", "value", SHAREGPT_ROLES)
    prompt, completions = _split_last_assistant(turns)
    return [Example(loc, prompt, completions, source_id=_ident(row, loc, "id"))]


def _openai_chat(loc: Loc, row: dict) -> list[Example]:
    messages = _turns(row, loc, "messages", "role", "content", OPENAI_ROLES)
    prompt, completions = _split_last_assistant(messages)
    return [Example(loc, prompt, completions, source_id=_ident(row, loc, "id"))]


def _scored_prompt(row: dict, loc: Loc) -> list[dict]:
    value = row.get("prompt")
    if isinstance(value, list):
        return _turns(row, loc, "prompt", "role", "content", OPENAI_ROLES)
    return [{"role": "user", "content": _text(row, loc, "prompt")}]


def _read_scored(rows: Iterable[Row]) -> Iterator[Example | Skipped]:
    """Rows {prompt, completion, score} grouped per prompt (first-seen order) into one ranked example."""
    groups: dict[str, list[tuple[Loc, dict, list[dict], str, float]]] = {}
    for item in _parsed(rows, lambda loc, row: _scored_prompt(row, loc)):
        if isinstance(item, Skipped):
            yield item
            continue
        loc, row, prompt = item
        member = (loc, row, prompt, _text(row, loc, "completion"), _score(row, loc))
        groups.setdefault(dumps(prompt), []).append(member)
    for members in groups.values():
        loc, row, prompt = members[0][:3]  # the group's first row speaks for user and category
        answers, scores = _merge_equal_answers([(m[3], m[4]) for m in members])
        yield Example(
            loc,
            prompt,
            answers,
            _dense_ranks(scores),
            user_id=_ident(row, loc, "user_id"),
            category=_row_category(row, loc),
            merged=len(members) - len(answers),
        )


def _merge_equal_answers(scored: list[tuple[str, float]]) -> tuple[list[str], list[float]]:
    """One entry per distinct answer (first-seen order) with the mean of its scores.

    Scored sets often hold the same answer twice (released model samples, several raters): as
    two completions they would make a pair that cannot have a preference.
    """
    by_answer: dict[str, list[float]] = {}
    for answer, score in scored:
        by_answer.setdefault(answer, []).append(score)
    return list(by_answer), [sum(s) / len(s) for s in by_answer.values()]


_ALL_KINDS = ("demonstrations", "comparisons", "prompts")
_ONE_ANSWER = ("demonstrations", "prompts")

FORMATS: dict[str, Format] = {
    "alpaca": Format(_per_row(_alpaca), _ONE_ANSWER, "Alpaca {instruction, input, output} or Self-Instruct seeds"),
    "dolly": Format(_per_row(_dolly), _ONE_ANSWER, "Dolly {instruction, context, response, category}"),
    "hh-rlhf": Format(_per_row(_hh_rlhf), _ALL_KINDS, "Anthropic HH {chosen, rejected} dialogues"),
    "sharegpt": Format(_per_row(_sharegpt), _ONE_ANSWER, "ShareGPT {id, conversations: [{from, value}]}"),
    "openai-chat": Format(_per_row(_openai_chat), _ONE_ANSWER, "OpenAI chat {messages: [{role, content}]}"),
    "scored": Format(_read_scored, _ALL_KINDS, "scored rows {prompt, completion, score} grouped into rankings"),
}


# ---------------------------------------------------------------------------------------
# Example -> record


def _check_prompt(messages: list[dict]) -> None:
    if not messages:
        raise _Skip("empty prompt")
    if messages[-1]["role"] != "user":
        raise _Skip("prompt does not end with a user turn")
    if any(not m["content"].strip() for m in messages):
        raise _Skip("empty message in prompt")


def _best_completion(example: Example) -> str:
    """The one answer a demonstration keeps: the only completion, or the unique rank 1."""
    if not example.completions:
        raise _Skip("no completion")
    if example.ranks is None:
        return example.completions[0]
    best = [c for c, r in zip(example.completions, example.ranks, strict=True) if r == min(example.ranks)]
    if len(best) > 1:
        raise _Skip("best completion tied")
    return best[0]


def _project(example: Example, kind: str) -> dict:
    """The kind-specific body of a record (messages + completion fields), or _Skip."""
    _check_prompt(example.messages)
    body: dict[str, Any] = {"messages": example.messages}
    if kind == "prompts":
        return body
    if kind == "demonstrations":
        completion = _best_completion(example)
        if not completion.strip():
            raise _Skip("empty completion")
        return {**body, "completion": completion}
    completions, ranks = example.completions, example.ranks or []
    if len(completions) < 2:
        raise _Skip("fewer than 2 completions")
    if len(set(ranks)) == 1:
        raise _Skip("all completions tied")
    if any(not c.strip() for c in completions):
        raise _Skip("empty completion")
    if len(set(completions)) < len(completions):
        raise _Skip("duplicate completions")
    return {**body, "completions": completions, "ranks": ranks}


# ---------------------------------------------------------------------------------------
# Ids, users, categories


def _record_ids(fmt: str, kept: list[tuple[int, Example, dict]]) -> list[str]:
    """The source id when present and unique in this import, else `{fmt}-{n:06d}` (n: example ordinal)."""
    seen = Counter(e.source_id for _, e, _ in kept if e.source_id is not None)
    ids = [e.source_id if e.source_id is not None and seen[e.source_id] == 1 else f"{fmt}-{n:06d}" for n, e, _ in kept]
    taken = Counter(ids)
    for (_, example, _), record_id in zip(kept, ids, strict=True):
        if taken[record_id] > 1 and record_id == example.source_id:  # e.g. a source id "alpaca-000003"
            raise example.loc.error(f"id {record_id!r} is also the generated id of another record")
    return ids


def _file_tag(src: Path) -> str:
    return file_hash(src, "sha256").hexdigest()[:8]


def _user_ids(fmt: str, src: Path, kept: list[tuple[int, Example, dict]]) -> list[str]:
    """The source's user id where it has one; else each row (or group of rows) is a user of its own.

    An anonymous row belongs to nobody else: `prepare` groups records by user and by prompt text,
    and cuts the groups into every file's shares. Rows of one group (a Self-Instruct task's
    instances, which share their instruction) share a user, so near-copies cannot straddle a
    split; a group above the paper's cap of 200 prompts per user is split into users of 200.
    Ids are `{fmt}-{hash of the source bytes}-uNNNNNN`: the same file gives the same users, and
    appending another file never merges users.
    """
    anonymous: dict[str, list[int]] = {}
    for i, (_, example, _) in enumerate(kept):
        if example.user_id is None:
            anonymous.setdefault(example.group or f"record {i}", []).append(i)
    cap = MAX_PROMPTS_PER_USER
    chunks = [m[i : i + cap] for m in anonymous.values() for i in range(0, len(m), cap)]
    # A user is numbered by its first row's place in the source, so the same rows imported as
    # another kind (Alpaca as demonstrations and as prompts) get the same users, whatever was skipped.
    user_of = {i: kept[chunk[0]][0] for chunk in chunks for i in chunk}
    tag = _file_tag(src) if anonymous else ""
    return [
        e.user_id if e.user_id is not None else f"{fmt}-{tag}-u{user_of[i]:06d}" for i, (_, e, _) in enumerate(kept)
    ]


def _category(example: Example, messages: list[dict], cli: str | None) -> tuple[str, str]:
    """(category, category_source): --category wins, then the source's own, then the rules."""
    if cli is not None:
        return cli, "cli"
    if example.category is not None:
        return example.category, "source"
    return categorize(messages), "rules"


def _records(fmt: str, src: Path, kept: list[tuple[int, Example, dict]], cli_category: str | None) -> list[dict]:
    ids, users = _record_ids(fmt, kept), _user_ids(fmt, src, kept)
    records = []
    for (_, example, body), record_id, user_id in zip(kept, ids, users, strict=True):
        category, how = _category(example, body["messages"], cli_category)
        head = {"id": record_id, "user_id": user_id, "category": category, "category_source": how, "source": fmt}
        records.append({**head, **body})
    return records


# ---------------------------------------------------------------------------------------
# The component


def _check_arguments(fmt: str, kind: str, category: str | None) -> Format:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    spec = FORMATS[fmt]
    if kind not in spec.kinds:
        raise ValueError(f"kind {kind!r} is not available for format {fmt!r}; valid kinds: {', '.join(spec.kinds)}")
    if category is not None and category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; valid categories: {', '.join(CATEGORIES)}")
    return spec


def _read_existing(out: Path) -> tuple[list[dict], set[str]]:
    """OUT's records (kept first when appending) and their prompt texts."""
    if not out.exists():
        return [], set()
    existing = read_jsonl(out)
    try:
        prompts = {prompt_text(record["messages"]) for record in existing}
    except (KeyError, TypeError) as e:
        raise DataError(out, None, f"cannot append: a record has no valid messages ({e!r})") from None
    return existing, prompts


def _check_no_id_clash(out: Path, existing: list[dict], records: list[dict]) -> None:
    """An imported id already in OUT is an error, never a silent overwrite or a duplicate."""
    taken = {record.get("id") for record in existing}
    clashes = [record["id"] for record in records if record["id"] in taken]
    if clashes:
        raise DataError(
            out,
            None,
            f"{len(clashes)} imported id(s) already in this file (e.g. {', '.join(clashes[:3])}); nothing was written",
        )


def _collect(
    items: Iterable[Example | Skipped], kind: str, seen_prompts: set[str]
) -> tuple[list[tuple[int, Example, dict]], Counter[str]]:
    """(ordinal, example, body) of every example that becomes a record, and skip counts per reason.

    A prompt seen before (in this file or, when appending, in OUT) is skipped: validation
    requires unique prompts per file, and the paper deduplicates prompts too. The first wins.
    """
    kept: list[tuple[int, Example, dict]] = []
    skipped: Counter[str] = Counter()
    for ordinal, item in enumerate(items, start=1):
        try:
            if isinstance(item, Skipped):
                raise _Skip(item.reason)
            body = _project(item, kind)
            text = prompt_text(body["messages"])
            if text in seen_prompts:
                raise _Skip("duplicate prompt")
            seen_prompts.add(text)
            kept.append((ordinal, item, body))
        except _Skip as skip:
            skipped[skip.reason] += 1
    return kept, skipped


class _Counted:
    """Rows passed through, counted (how many source rows were read)."""

    def __init__(self, rows: Iterable[Row]):
        self.rows, self.n = rows, 0

    def __iter__(self) -> Iterator[Row]:
        for row in self.rows:
            self.n += 1
            yield row


def run_import(
    fmt: str, src: Path, kind: str, out: Path, category: str | None = None, append: bool = False
) -> dict[str, Any]:
    """Import SRC (in format FMT) as native records of KIND into OUT; return the metrics.

    `category` sets every record's category (category_source "cli"); otherwise a category
    from the source is mapped ("source") or the rule-based categoriser assigns one
    ("rules"). A prompt already seen (earlier in SRC, or in OUT when appending) is skipped as
    a duplicate. With `append`, OUT's existing records are kept first and new ids must not
    collide with them. OUT is replaced atomically, and only when the whole import succeeded; an
    import that gives no record at all is an error (it would otherwise empty OUT).
    """
    spec = _check_arguments(fmt, kind, category)
    src, out = Path(src), Path(out)
    if not src.is_file():
        raise DataError(src, None, "no such file" if not src.exists() else "not a regular file")
    existing, seen_prompts = _read_existing(out) if append else ([], set())
    rows = _Counted(iter_rows(src))
    kept, skipped = _collect(spec.reader(rows), kind, seen_prompts)
    records = _records(fmt, src, kept, category)
    if not records and not (append and existing):  # appending what is already there is a no-op
        reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items())) or "no rows"
        raise DataError(src, None, f"no {kind} record to write ({rows.n} rows read; skipped: {reasons}); "
                        f"{out} was left as it was")  # fmt: skip
    _check_no_id_clash(out, existing, records)
    write_jsonl(out, existing + records)
    return {
        "format": fmt,
        "kind": kind,
        "src": str(src),
        "out": str(out),
        "read": rows.n,
        "examples": len(kept) + sum(skipped.values()),
        "written": len(records),
        "skipped": sum(skipped.values()),
        "skipped_by_reason": dict(sorted(skipped.items())),
        "merged_equal_answers": sum(example.merged for _, example, _ in kept),
        "by_category": {name: sum(r["category"] == name for r in records) for name in CATEGORIES},
        "by_category_source": {
            how: sum(r["category_source"] == how for r in records) for how in ("source", "cli", "rules")
        },
        "users": len({r["user_id"] for r in records}),
        "existing": len(existing),
        "total": len(existing) + len(records),
    }
