"""TruthfulQA-style multiple choice: no judge, only the model's own likelihoods.

For each question the model scores every reference answer by the sum of its tokens' log-probs
after the question (the chat template's prompt). As in Lin et al. (2022):
- MC1: 1 when the best answer scores above every incorrect answer;
- MC2: the probability mass of the correct answers, normalised over correct and incorrect.

Files are TruthfulQA's public formats: its CSV (`Question`, `Best Answer`, `Correct Answers`,
`Incorrect Answers`, answers separated by "; ") or JSON Lines with `question`, `best_answer`,
`correct_answers` and `incorrect_answers` (lists), as the Hugging Face copy has them.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import torch

from components.data.io import iter_jsonl
from components.errors import DataError
from components.eval.judges import interval
from components.models.lm import response_logprobs
from components.models.text import batch_tensors, completion_ids, prompt_ids

CSV_FIELDS = {"question": "Question", "best_answer": "Best Answer", "correct_answers": "Correct Answers",
              "incorrect_answers": "Incorrect Answers"}  # fmt: skip


def read_questions(path: Path) -> list[dict]:
    """The questions of a TruthfulQA file; a malformed row is a DataError naming the file, the row and the field."""
    if path.suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as f:
            rows = [(n, {k: row.get(v) for k, v in CSV_FIELDS.items()}) for n, row in enumerate(csv.DictReader(f), 2)]
    else:
        rows = []
        for n, row in iter_jsonl(path):
            if not isinstance(row, dict):
                raise DataError(
                    path, n, "expected an object with question, best_answer, correct_answers, incorrect_answers"
                )
            rows.append((n, row))
    questions = [question(path, n, row) for n, row in rows]
    if not questions:
        raise DataError(path, None, "no question")
    return questions


def answers(value: object) -> list[str]:
    items = value.split(";") if isinstance(value, str) else value if isinstance(value, list) else []
    return [a.strip() for a in items if isinstance(a, str) and a.strip()]


def question(path: Path, line: int, row: dict) -> dict:
    item = {
        "question": row.get("question"),
        "best_answer": row.get("best_answer"),
        "correct_answers": answers(row.get("correct_answers")),
        "incorrect_answers": answers(row.get("incorrect_answers")),
    }
    for key in ("question", "best_answer"):
        if not isinstance(item[key], str) or not item[key].strip():
            raise DataError(path, line, f"field {key}: missing or empty")
    if not item["incorrect_answers"]:
        raise DataError(path, line, "field incorrect_answers: no answer")
    if item["best_answer"] not in item["correct_answers"]:
        item["correct_answers"] = [item["best_answer"], *item["correct_answers"]]
    return item


@torch.no_grad()
def answer_logprobs(model, tok, q: str, candidates: list[str]) -> list[float]:
    """Sum of log p(token) of each candidate answer (with its end of sequence) after the question."""
    prompt = prompt_ids(tok, [{"role": "user", "content": q}])
    responses = [completion_ids(tok, c) for c in candidates]
    ids, mask, response_mask, q_len = batch_tensors(tok, [prompt] * len(candidates), responses)
    device = next(model.parameters()).device
    ids, mask, response_mask = ids.to(device), mask.to(device), response_mask.to(device)
    logp = response_logprobs(model, ids, mask, q_len, 1.0)
    return (logp * response_mask).sum(-1).tolist()


def mc_scores(model, tok, questions: list[dict]) -> dict:
    """MC1 and MC2 over the questions, each with its 95% bootstrap interval."""
    model.eval()
    mc1, mc2 = [], []
    for item in questions:
        correct, incorrect = item["correct_answers"], item["incorrect_answers"]
        scores = answer_logprobs(model, tok, item["question"], [item["best_answer"], *correct, *incorrect])
        best, right, wrong = scores[0], scores[1 : 1 + len(correct)], scores[1 + len(correct) :]
        mc1.append(float(best > max(wrong)))
        top = max(scores)
        mass_right = sum(math.exp(s - top) for s in right)
        mc2.append(mass_right / (mass_right + sum(math.exp(s - top) for s in wrong)))
    return {name: summary(values) for name, values in (("mc1", mc1), ("mc2", mc2))} | {"questions": len(questions)}


def summary(values: list[float]) -> dict:
    low, high = interval(values)
    return {"value": sum(values) / len(values), "low": low, "high": high}
