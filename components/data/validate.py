"""Validate the native data files with Great Expectations before any training reads them.

Each file becomes a pandas DataFrame with one row per record and derived columns (the type of
every required field, roles_valid, last_role, prompt_chars, k, ranks_valid, untied_pairs, ...),
so that every rule of the data contract (DESIGN.md section 3) is one GX expectation over one
column. GX returns the failing rows by their `file`, `line` and `id` columns (result format
COMPLETE), which is how the report locates each failure. A split layout (train/valid/test
subfolders) gets one more suite over all its records: no user and no prompt in two splits.
Data Docs are built from the stored validation results into `docs_dir`.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from components.data.io import atomic_path, iter_jsonl_lenient, write_json
from components.data.schema import CATEGORIES, KINDS, ROLES, SPLITS, TABLE1, prompt_text
from components.errors import DataError, StageError
from components.hashing import files_digest
from components.params import ValidateParams

# ---------------------------------------------------------------------------------------------
# The contract: required fields per kind of file, and one rule per expectation.

_PROMPT_FIELDS = {"id": "str", "user_id": "str", "category": "str", "messages": "list"}
FIELDS: dict[str, dict[str, str]] = {
    "demonstrations": {**_PROMPT_FIELDS, "completion": "str"},
    "comparisons": {**_PROMPT_FIELDS, "completions": "list", "ranks": "list"},
    "prompts": _PROMPT_FIELDS,
    "corpus": {"id": "str", "text": "str"},
}
# JSON type names as the report shows them.
_JSON_TYPES: dict[type, str] = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}

_ALL = frozenset(KINDS)
_PROMPTED = frozenset({"demonstrations", "comparisons", "prompts"})
_D, _C, _T = frozenset({"demonstrations"}), frozenset({"comparisons"}), frozenset({"corpus"})

PARSE_RULE = "record_parses"  # a line that is not UTF-8 JSON holding an object; not a GX expectation
FILES_RULE = "files_present"  # the data folder holds none of the native files; not a GX expectation
KL_RULE = "category_distribution"
_INDEX = ["file", "line", "id"]  # the columns GX returns for each failing row

Make = Callable[[Any, str, ValidateParams], Any]  # (gx.expectations, column, params) -> Expectation


def _in_set(*values: object) -> Make:
    return lambda gxe, column, p: gxe.ExpectColumnValuesToBeInSet(column=column, value_set=list(values))


def _at_least(low: int) -> Make:
    return lambda gxe, column, p: gxe.ExpectColumnValuesToBeBetween(column=column, min_value=low)


def _at_most(param: str) -> Make:
    return lambda gxe, column, p: gxe.ExpectColumnValuesToBeBetween(column=column, max_value=getattr(p, param))


def _unique(gxe: Any, column: str, p: ValidateParams) -> Any:
    return gxe.ExpectColumnValuesToBeUnique(column=column)


def _has_rows(gxe: Any, column: str, p: ValidateParams) -> Any:
    return gxe.ExpectTableRowCountToBeBetween(min_value=1)


def _near_table1(gxe: Any, column: str, p: ValidateParams) -> Any:
    # Table 1 sums to 0.999 (rounded in the paper); GX wants the weights to sum to 1.
    total = sum(TABLE1.values())
    partition = {"values": list(TABLE1), "weights": [share / total for share in TABLE1.values()]}
    return gxe.ExpectColumnKLDivergenceToBeLessThan(
        column=column,
        partition_object=partition,
        threshold=p.kl_threshold,
        severity="warning" if p.kl_severity == "warning" else "critical",
    )


_TRUE = _in_set(True)


@dataclass(frozen=True)
class Rule:
    """One expectation over one derived column (None: over the whole table).

    `detail` explains a failure; it is formatted with `value` (the failing row's value in
    `column`, or the observed value of a whole-column expectation) and `p` (the params).
    """

    name: str
    field: str | None
    column: str | None
    kinds: frozenset[str]
    make: Make
    detail: str


RULES: tuple[Rule, ...] = (
    Rule("records_present", None, None, _ALL, _has_rows, "no readable record"),
    Rule("id_unique", "id", "id", _ALL, _unique, "the same id is on another line"),
    Rule("messages_nonempty", "messages", "n_messages", _PROMPTED, _at_least(1), "no messages"),
    Rule("message_shape", "messages", "messages_shaped", _PROMPTED, _TRUE, "a message lacks a string role or content"),
    Rule("roles_valid", "messages", "roles_valid", _PROMPTED, _TRUE, f"a role is not {'|'.join(ROLES)}"),
    Rule("last_turn_user", "messages", "last_role", _PROMPTED, _in_set("user"), "the last turn is from {value}"),
    Rule("prompt_nonempty", "messages", "prompt_filled", _PROMPTED, _TRUE, "a turn has empty content"),
    Rule("prompt_unique", "messages", "prompt_text", _PROMPTED, _unique, "the same prompt is on another line"),
    Rule(
        "prompt_length",
        "messages",
        "prompt_chars",
        _PROMPTED,
        _at_most("max_prompt_chars"),
        "prompt text has {value} chars, max_prompt_chars is {p.max_prompt_chars}",
    ),
    Rule("category_in_table1", "category", "category", _PROMPTED, _in_set(*CATEGORIES), "{value} is not in Table 1"),
    Rule(
        KL_RULE,
        "category",
        "kl_category",
        _PROMPTED,
        _near_table1,
        "KL divergence from Table 1 is {value}, kl_threshold is {p.kl_threshold}",
    ),
    Rule("completion_nonempty", "completion", "completion_filled", _D, _TRUE, "empty"),
    Rule(
        "completion_length",
        "completion",
        "completion_chars",
        _D,
        _at_most("max_completion_chars"),
        "{value} chars, max_completion_chars is {p.max_completion_chars}",
    ),
    Rule("completions_nonempty", "completions", "completions_filled", _C, _TRUE, "an entry is empty or not a string"),
    Rule(
        "completion_length",
        "completions",
        "completions_chars",
        _C,
        _at_most("max_completion_chars"),
        "the longest has {value} chars, max_completion_chars is {p.max_completion_chars}",
    ),
    Rule("k_at_least_2", "completions", "k", _C, _at_least(2), "K = {value}, a comparison needs 2 or more"),
    Rule("ranks_one_int_per_completion", "ranks", "ranks_valid", _C, _TRUE, "not one int per completion"),
    Rule("untied_pair", "ranks", "untied_pairs", _C, _at_least(1), "all ranks tie: no pair to learn from"),
    Rule("text_nonempty", "text", "text_filled", _T, _TRUE, "empty"),
    Rule(
        "text_length",
        "text",
        "text_chars",
        _T,
        _at_most("max_text_chars"),
        "{value} chars, max_text_chars is {p.max_text_chars}",
    ),
)

# The cross-split suite: its columns hold the splits a value occurs in, e.g. "train+test".
SPLIT_RULES: tuple[Rule, ...] = (
    Rule("user_id_in_one_split", "user_id", "user_id_splits", _PROMPTED, _in_set(*SPLITS), "user_id is in {value}"),
    Rule("prompt_in_one_split", "messages", "prompt_splits", _PROMPTED, _in_set(*SPLITS), "prompt is in {value}"),
)


def rules_for(kind: str, records: int, params: ValidateParams) -> list[Rule]:
    """The suite of one file: a type rule per required field (a missing field shows as type
    "missing"), then the rules of its kind; KL only with enough records to estimate shares."""
    fields = [
        Rule("required_field", name, f"type_{name}", frozenset({kind}), _in_set(expected), f"{{value}}, not {expected}")
        for name, expected in FIELDS[kind].items()
    ]
    enough = records >= params.kl_min_records
    return fields + [r for r in RULES if kind in r.kinds and (r.name != KL_RULE or enough)]


# ---------------------------------------------------------------------------------------------
# The report.


@dataclass(frozen=True)
class Failure:
    file: str  # relative to the data folder, e.g. "comparisons.jsonl" or "train/comparisons.jsonl"
    line: int | None  # None for a whole-file rule (row count, KL divergence)
    record_id: str | None
    field: str | None
    rule: str
    detail: str
    severity: Literal["error", "warning"] = "error"  # a warning is reported but does not fail validation

    def __str__(self) -> str:
        where = [f"line {self.line}"] if self.line is not None else []
        where += [f"id {self.record_id}"] if self.record_id is not None else []
        where += [f"field {self.field}"] if self.field is not None else []
        head = ": ".join([self.file, ", ".join(where)] if where else [self.file])
        tag = " [warning]" if self.severity == "warning" else ""
        return f"{head}: {self.rule}{tag} ({self.detail})"

    def sort_key(self) -> tuple:
        return self.file, self.line or 0, self.rule, self.field or ""


@dataclass
class ValidationReport:
    failures: list[Failure]
    records: dict[str, int]  # non-blank lines per file, readable or not

    @property
    def success(self) -> bool:
        return not any(f.severity == "error" for f in self.failures)

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        return {"records": dict(self.records), "failures_by_rule": dict(Counter(f.rule for f in self.failures))}

    def to_metrics(self) -> dict[str, Any]:
        # One failed expectation per (file, rule, field): what shows red in Data Docs.
        failed = len({(f.file, f.rule, f.field) for f in self.failures})
        return {"success": self.success, **self.counts, "failed_expectations": failed}

    def format(self, max_lines: int = 50) -> str:
        errors = sum(f.severity == "error" for f in self.failures)
        head = f"validation {'passed' if self.success else 'failed'}: "
        head += f"{sum(self.records.values())} records in {len(self.records)} files"
        if self.failures:
            head += f", {errors} errors, {len(self.failures) - errors} warnings"
        lines = [head] + [str(f) for f in self.failures[:max_lines]]
        if len(self.failures) > max_lines:
            lines.append(f"... and {len(self.failures) - max_lines} more")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Reading: every readable record becomes a row of derived columns; every unreadable line a Failure.


def iter_records(path: Path) -> Iterator[tuple[int, dict | DataError]]:
    """(line, record) for every non-blank line, with a DataError for a line that is not a JSON object."""
    for number, value in iter_jsonl_lenient(path):
        if not isinstance(value, dict | DataError):
            value = DataError(path, number, f"expected a JSON object, got {type(value).__name__}")
        yield number, value


def _type_name(record: dict, name: str) -> str:
    if name not in record:
        return "missing"
    value = record[name]
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)


def _prompt_columns(messages: list | None) -> dict[str, Any]:
    if messages is None:
        return {}
    shaped = all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in messages
    )
    columns: dict[str, Any] = {"n_messages": len(messages), "messages_shaped": shaped}
    if shaped and messages:  # the checks below read roles and contents
        text = prompt_text(messages)
        columns |= {
            "roles_valid": all(m["role"] in ROLES for m in messages),
            "last_role": messages[-1]["role"],
            "prompt_filled": all(m["content"].strip() for m in messages),
            "prompt_text": text,
            "prompt_chars": len(text),
        }
    return columns


def _untied_pairs(ranks: list[int]) -> int:
    k = len(ranks)
    return k * (k - 1) // 2 - sum(c * (c - 1) // 2 for c in Counter(ranks).values())


def _comparison_columns(completions: list | None, ranks: list | None) -> dict[str, Any]:
    if completions is None:
        return {}
    texts = [c for c in completions if isinstance(c, str)]
    columns: dict[str, Any] = {
        "k": len(completions),
        "completions_filled": len(texts) == len(completions) and all(t.strip() for t in texts),
        "completions_chars": max(map(len, texts), default=0),
    }
    if ranks is not None:
        # type() rather than isinstance(): true and false are ints in Python, not in the contract.
        columns["ranks_valid"] = valid = len(ranks) == len(completions) and all(type(r) is int for r in ranks)
        if valid and len(ranks) >= 2:  # K < 2 is its own rule: report it once
            columns["untied_pairs"] = _untied_pairs(ranks)
    return columns


def _text_columns(name: str, text: str | None) -> dict[str, Any]:
    return {} if text is None else {f"{name}_filled": bool(text.strip()), f"{name}_chars": len(text)}


def derive_row(kind: str, file: str, line: int, record: dict) -> dict[str, Any]:
    """One DataFrame row: where the record is, the type of each required field, the derived columns.

    A derived column stays None where its field is missing or mistyped; GX skips nulls in
    column checks, so a bad field is reported once (by required_field), not by every rule after it.
    """
    record_id = record.get("id")
    row: dict[str, Any] = {"file": file, "line": line, "id": record_id}
    if record_id is not None and not isinstance(record_id, str):
        row["id"] = json.dumps(record_id)  # still shown, to find the record
    typed: dict[str, Any] = {}
    for name, expected in FIELDS[kind].items():
        row[f"type_{name}"] = _type_name(record, name)
        typed[name] = record[name] if row[f"type_{name}"] == expected else None
    if kind in _PROMPTED:
        category = typed["category"]
        # An unknown category is its own rule; the KL column keeps only the ten.
        row |= {
            "user_id": typed["user_id"],
            "category": category,
            "kl_category": category if category in TABLE1 else None,
        }
        row |= _prompt_columns(typed["messages"])
    if kind == "comparisons":
        row |= _comparison_columns(typed["completions"], typed["ranks"])
    row |= _text_columns("completion", typed.get("completion")) | _text_columns("text", typed.get("text"))
    return row


@dataclass
class DataFile:
    name: str  # relative to the data folder
    kind: str
    rows: list[dict[str, Any]]
    unreadable: list[Failure]


def read_data_file(path: Path, name: str, kind: str) -> DataFile:
    rows, unreadable = [], []
    for line, value in iter_records(path):
        if isinstance(value, DataError):
            unreadable.append(Failure(name, line, value.record_id, None, PARSE_RULE, value.problem))
        else:
            rows.append(derive_row(kind, name, line, value))
    return DataFile(name, kind, rows, unreadable)


def split_rows(files: list[DataFile]) -> list[dict[str, Any]]:
    """One row per prompted record of every split, with the splits its user_id and its prompt occur in."""
    rows = [row | {"split": f.name.split("/")[0]} for f in files if f.kind in _PROMPTED for row in f.rows]
    seen: dict[str, defaultdict[Any, set[str]]] = {"user_id": defaultdict(set), "prompt_text": defaultdict(set)}
    for row in rows:
        for key, where in seen.items():
            if row.get(key) is not None:
                where[row[key]].add(row["split"])

    def splits_of(key: str, row: dict) -> str | None:
        value = row.get(key)
        return None if value is None else "+".join(s for s in SPLITS if s in seen[key][value])

    return [
        {c: row[c] for c in _INDEX}
        | {"user_id_splits": splits_of("user_id", row), "prompt_splits": splits_of("prompt_text", row)}
        for row in rows
    ]


# ---------------------------------------------------------------------------------------------
# Great Expectations: one ephemeral context per run; a suite, batch and validation definition per file.


class Expectations:
    """An ephemeral GX context whose only Data Docs site is SITE_DIR; one suite per validated file."""

    def __init__(self, params: ValidateParams, site_dir: Path):
        import great_expectations as gx  # takes seconds: only when validating
        import pandas as pd
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        self.gx, self.pd, self.params = gx, pd, params
        site = {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(site_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
        config = DataContextConfig(
            # No default docs site in a temporary folder: ours, under docs_dir, is the only one.
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
            data_docs_sites={"local": site},
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
        )
        self.context = gx.get_context(project_config=config, mode="ephemeral")
        self.source = self.context.data_sources.add_pandas("native")
        self.result_format = {
            "result_format": "COMPLETE",
            "unexpected_index_column_names": _INDEX,
            "partial_unexpected_count": 20,  # the sample Data Docs show; the report reads the full index list
        }

    def validate(self, name: str, rows: list[dict[str, Any]], rules: list[Rule]) -> list[Failure]:
        """Run one suite over one file's rows; each failing expectation gives its failing rows."""
        columns = list(dict.fromkeys(_INDEX + [r.column for r in rules if r.column]))  # "id" is both
        frame = self.pd.DataFrame.from_records(rows, columns=columns)
        # Dots become folders in the docs site: "train/comparisons.jsonl" -> train/comparisons.html.
        suite_name = name.removesuffix(".jsonl").replace("/", ".")
        expectations = []
        for rule in rules:
            expectation = rule.make(self.gx.expectations, rule.column, self.params)
            expectation.meta = {"rule": rule.name, "field": rule.field}  # how a result finds its rule
            expectation.notes = f"Rule {rule.name}" + (f", field {rule.field}" if rule.field else "")  # in Data Docs
            expectations.append(expectation)
        # All at once: adding expectations one by one re-serialises the suite each time.
        suite = self.context.suites.add(self.gx.ExpectationSuite(name=suite_name, expectations=expectations))
        batch = self.source.add_dataframe_asset(suite_name).add_batch_definition_whole_dataframe("whole")
        definition = self.gx.ValidationDefinition(name=suite_name, data=batch, suite=suite)
        definition = self.context.validation_definitions.add(definition)
        result = definition.run(batch_parameters={"dataframe": frame}, result_format=self.result_format)

        by_meta = {(rule.name, rule.field): rule for rule in rules}
        failures = []
        for outcome in result.results:
            if not outcome.success:
                meta = outcome.expectation_config.meta
                failures += _failures(name, by_meta[meta["rule"], meta["field"]], outcome, self.params)
        return failures

    def build_docs(self) -> None:
        self.context.build_data_docs(site_names=["local"])


def _show(value: Any) -> str:
    if isinstance(value, float):  # pandas turns int columns with nulls into floats
        return str(int(value)) if value.is_integer() else f"{value:.4g}"
    return "infinite" if value is None else str(value)  # GX observes None for an infinite KL


def _raised(info: dict) -> str | None:
    """The exception message in a result's exception_info: flat, or nested per metric as GX 1.x has it."""
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    return next((m for m in (_raised(v) for v in info.values() if isinstance(v, dict)) if m), None)


def _failures(file: str, rule: Rule, outcome: Any, params: ValidateParams) -> list[Failure]:
    severity = "warning" if outcome.expectation_config.severity == "warning" else "error"
    problem = _raised(outcome.exception_info or {})
    if problem:  # a check that breaks must fail loudly, not pass
        return [Failure(file, None, None, rule.field, rule.name, f"the check raised: {problem}")]
    rows = outcome.result.get("unexpected_index_list")
    if not rows:  # a whole-table or whole-column expectation (row count, KL divergence)
        detail = rule.detail.format(value=_show(outcome.result.get("observed_value")), p=params)
        return [Failure(file, None, None, rule.field, rule.name, detail, severity)]
    return [
        Failure(
            row["file"],
            int(row["line"]),
            row["id"],
            rule.field,
            rule.name,
            rule.detail.format(value=_show(row.get(rule.column)), p=params),
            severity,
        )
        for row in rows
    ]


# ---------------------------------------------------------------------------------------------
# The stage.


def find_files(data: Path) -> tuple[list[tuple[Path, str, str]], bool]:
    """(path, name, kind) of each native file present, and whether DATA has the split layout."""
    splits = [s for s in SPLITS if (data / s).is_dir()]
    folders = [(data / s, f"{s}/") for s in splits] or [(data, "")]
    found = [
        (folder / fname, prefix + fname, kind)
        for folder, prefix in folders
        for kind, fname in KINDS.items()
        if (folder / fname).is_file()
    ]
    return found, bool(splits)


def validate_data(params: ValidateParams, data: Path, site_dir: Path) -> ValidationReport:
    data = Path(data)
    if not data.is_dir():
        raise DataError(data, None, "data folder not found")
    paths, is_split = find_files(data)
    files = [read_data_file(path, name, kind) for path, name, kind in paths]
    failures: list[Failure] = []
    if not files:
        failures.append(Failure(data.name, None, None, None, FILES_RULE, f"none of {', '.join(KINDS.values())}"))
    gx = Expectations(params, site_dir)
    for f in files:
        failures += f.unreadable + gx.validate(f.name, f.rows, rules_for(f.kind, len(f.rows), params))
    if is_split:
        failures += gx.validate("splits", split_rows(files), list(SPLIT_RULES))
    gx.build_docs()
    records = {f.name: len(f.rows) + len(f.unreadable) for f in files}
    return ValidationReport(sorted(failures, key=Failure.sort_key), records)


def run_validate(params: ValidateParams, data: Path, docs_dir: Path, metrics_path: Path) -> ValidationReport:
    """Validate DATA (flat or split layout); write Data Docs under DOCS_DIR and metrics to METRICS_PATH.

    Returns the report; the caller decides what a failure means (the CLI exits non-zero).
    """
    with atomic_path(docs_dir) as site_dir:  # a run that crashes leaves the previous docs in place
        site_dir.mkdir(parents=True)
        report = validate_data(params, data, site_dir)
    write_json(metrics_path, report.to_metrics())
    return report


def validate_and_record(
    params: ValidateParams, data: Path, docs: Path, metrics_path: Path
) -> tuple[ValidationReport, dict]:
    """Validate DATA; the metrics file also records which bytes passed (what `require_valid` checks)."""
    report = run_validate(params, data, docs, metrics_path)
    metrics = {**report.to_metrics(), "data_fingerprint": data_fingerprint(data)}
    write_json(metrics_path, metrics)
    return report, metrics


def require_valid(metrics_path: Path, data: Path) -> None:
    """Refuse to go on unless the last validation passed on exactly the data now in DATA."""
    if not metrics_path.exists():
        raise StageError(f"{metrics_path} not found: run `instructflow validate` (the validate stage) first")
    result = json.loads(metrics_path.read_text(encoding="utf-8"))
    if not result.get("success"):
        raise StageError(f"{metrics_path}: the last validation failed; fix the data and validate again")
    if result.get("data_fingerprint") != data_fingerprint(data):
        raise StageError(f"{data} changed since it was validated: run the validate stage again")


def data_fingerprint(data: Path) -> str:
    """The native files of a data folder: ties a validation result to the bytes it saw."""
    return files_digest((name, data / name) for name in sorted(KINDS.values()) if (data / name).exists())
