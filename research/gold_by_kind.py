"""Diagnosis, not part of the pipeline: where does each model earn and lose its gold score?

The evaluation reports one gold score per model on its own run's test split. Two worlds (or two
checkpoints) are compared fairly only on the same prompts: this script answers the project's
test-split prompts (or, with --held-out, data/heldout.jsonl's) greedily with every model folder
given and prints one JSON line: per category, harmful requests and false premises counted apart
from the category they were asked in, the mean gold score and the share of answers that refuse
(on any kind but harmful, a needless refusal). A folder without a tokenizer uses the base model's.

    .venv/bin/python -m research.gold_by_kind [--root .] [--held-out] FOLDER [FOLDER ...]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from components.eval.evaluate import group_of, held_out_phrasings, held_out_prompts
from components.eval.gold import load_gold
from components.models.generation import answer
from components.models.model import load_causal_lm, load_tokenizer
from components.paths import DATA, MODELS, SPLITS_DIR
from components.world.grader import Grade, grade


def gold_by_kind(
    root: Path, folders: list[Path], max_new_tokens: int = 48, processes: int = 2, held_out: bool = False
) -> dict:
    """{folder: {"all": mean gold, "by_kind": {kind: [mean gold, refused share, prompts]}}}."""
    gold = load_gold(root / DATA)
    if gold is None:
        raise SystemExit(f"{root / DATA}: no gold.jsonl; this diagnosis needs the embedded world's grader")
    records = held_out_phrasings(root / DATA, gold) if held_out else held_out_prompts(root / SPLITS_DIR / "test")
    result = {}
    for folder in folders:
        tokenizer = folder if (folder / "tokenizer.json").exists() else root / MODELS / "base"
        model, tok = load_causal_lm(folder).eval(), load_tokenizer(tokenizer)
        texts = answer(model, tok, [r["messages"] for r in records], max_new_tokens, processes=processes)
        kinds: dict[str, list[Grade]] = defaultdict(list)
        for record, text in zip(records, texts, strict=True):
            spec = gold[record["id"]]
            kinds[group_of(record, spec)].append(grade(spec, text))
        scores = [g.score for grades in kinds.values() for g in grades]
        result[str(folder)] = {"all": round(sum(scores) / len(scores), 4), "by_kind": {}}
        for kind, grades in sorted(kinds.items()):
            mean, refused = sum(g.score for g in grades) / len(grades), sum(g.refused for g in grades) / len(grades)
            result[str(folder)]["by_kind"][kind] = [round(mean, 4), round(refused, 4), len(grades)]
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="model folders (e.g. artifacts/models/sft/epoch-08)")
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--held-out", action="store_true", help="data/heldout.jsonl's prompts, not the test split's")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    args = parser.parse_args(argv)
    print(json.dumps(gold_by_kind(args.root, args.folders, args.max_new_tokens, held_out=args.held_out)))


if __name__ == "__main__":
    main()
