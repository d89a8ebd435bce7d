"""The `prepare` stage: split every native file into train/valid/test/judge.

As in the paper, no user's prompts land in two splits; neither does a prompt text. The judge
split holds the users whose comparisons train the judge reward model and nothing else, so
evaluation has a judge the policy never optimised against. How records are grouped and cut
is components/data/assign.py.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from components.data.assign import Needs, assign
from components.data.io import atomic_path, read_jsonl, write_jsonl
from components.data.schema import COMPARISONS, CORPUS, JUDGE, KINDS, SPLITS, prompt_text
from components.data.validate import run_validate
from components.errors import StageError
from components.params import PrepareParams, ValidateParams

logger = logging.getLogger(__name__)


def links(name: str, record: dict) -> list[str]:
    """What ties records into one group: the user, and the prompt text (corpus documents: their id)."""
    if name == CORPUS:
        return [f"doc:{record['id']}"]
    return [f"user:{record['user_id']}", f"prompt:{prompt_text(record['messages'])}"]


def fractions(params: PrepareParams, name: str) -> dict[str, float]:
    """Each split's share of a file. The judge split takes comparisons only; corpus text has no judge share."""
    shares = {s: getattr(params, s) for s in SPLITS}
    if name == CORPUS:
        shares[JUDGE] = 0.0
        total = sum(shares.values())
        shares = {s: v / total for s, v in shares.items()}
    return shares


def needs(params: PrepareParams) -> Needs:
    def needed(name: str, split: str) -> bool:
        return getattr(params, split) > 0 and (split != JUDGE or name == COMPARISONS)

    return needed


def corpus_texts(splits: Path, split: str) -> list[str]:
    """The corpus texts of one split; none when the project has no corpus (its own data may not).

    Every corpus-dependent step (SFT's corpus blocks, PPO's ptx term, perplexity) then does
    without; `prepare` says so once.
    """
    path = splits / split / CORPUS
    return [r["text"] for r in read_jsonl(path)] if path.exists() else []


NO_CORPUS = (
    "no corpus.jsonl: SFT and PPO train without corpus blocks (no ptx term) and the alignment tax "
    "(perplexity) is not measured; `instructflow data import text DOCS --kind corpus` brings one in"
)


def split_records(records: dict[str, list[dict]], params: PrepareParams) -> dict[str, list[str]]:
    """The split of every record, per file: users' files cut together, the corpus on its own."""
    prompted = {name: rs for name, rs in records.items() if name != CORPUS}
    where = assign(prompted, fractions(params, COMPARISONS), params.seed, links, needs(params)) if prompted else {}
    if CORPUS in records:
        corpus = {CORPUS: records[CORPUS]}
        where |= assign(corpus, fractions(params, CORPUS), params.seed, links, needs(params))
    return where


def check_filled(path: Path, parts: dict[str, list[dict]], params: PrepareParams) -> None:
    """Every split this file needs got some of it, or the user hears why not."""
    empty = [s for s in SPLITS if needs(params)(path.name, s) and not parts[s]]
    if not empty:
        return
    records = [r for part in parts.values() for r in part]
    unit = "documents" if path.name == CORPUS else "users"
    groups = {r["id"] if path.name == CORPUS else r["user_id"] for r in records}
    shares = ", ".join(f"{s} ({fractions(params, path.name)[s]:.0%})" for s in empty)
    raise StageError(
        f"{path}: its {len(records)} records belong to {len(groups)} {unit}, too few to give {shares} any: "
        f"each of the {unit} (and each prompt text) stays in one split. Bring more {unit}, or set "
        f"prepare's fractions so that no split this file needs has a share its {unit} cannot fill"
    )


def run_prepare(params: PrepareParams, checks: ValidateParams, data: Path, out: Path) -> dict:
    """Write OUT/{train,valid,test,judge}/<file> for each native file in DATA; return counts.

    The splits are validated (no user or prompt text in two splits, every rule per file)
    before they are renamed into place; their Data Docs go to OUT/validation.
    """
    files = [name for name in KINDS.values() if (data / name).exists()]
    if not files:
        raise StageError(f"{data}: none of {', '.join(KINDS.values())} found")
    counts: dict[str, dict[str, int]] = {}
    users: dict[str, set[str]] = {s: set() for s in SPLITS}
    loaded = {name: read_jsonl(data / name) for name in files}
    where = split_records(loaded, params)
    with atomic_path(out) as tmp:
        for name in files:
            parts: dict[str, list[dict]] = {s: [] for s in SPLITS}
            for record, split in zip(loaded[name], where[name], strict=True):
                parts[split].append(record)
                if name != CORPUS:
                    users[split].add(record["user_id"])
            check_filled(data / name, parts, params)
            for split, records in parts.items():
                if records:  # a split this file needs has records (check_filled); the others may have none
                    write_jsonl(tmp / split / name, records)
            counts[name] = dict(Counter({s: len(r) for s, r in parts.items()}))
        report = run_validate(checks, tmp, tmp / "validation", tmp / "validation" / "validate.json")
        if not report.success:
            raise StageError(f"the splits failed validation, nothing was written to {out}\n{report.format()}")
    metrics = {"records": counts, "users": {s: len(u) for s, u in users.items()}, "splits_valid": report.success}
    if CORPUS not in files:
        logger.warning(NO_CORPUS)
        metrics["notes"] = [NO_CORPUS]
    return metrics
