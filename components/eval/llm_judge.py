"""A local LLM as a pairwise judge: which of two answers to a prompt is better?

Each pair is asked twice, with the answers in both orders, because LLM judges favour a
position; the two verdicts are averaged, so a judge that always says "A" comes out at 0.5.
The reply's first A, B or tie (case-insensitive, as a word) is its verdict; a reply with none
counts as a tie and is counted as unparsed, so a judge that cannot follow the template shows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from components.models.generation import answer_ids

VERDICT = re.compile(r"\b(A|B|tie)\b", re.IGNORECASE)
VALUE = {"a": 1.0, "b": 0.0, "tie": 0.5}  # the preference for the answer shown as A


@dataclass
class Verdicts:
    preferences: list[float]  # per prompt, for the first model's answer: 0, 0.25, 0.5, 0.75 or 1
    unparsed: int  # replies with no verdict (counted as ties)
    replies: int


def parse(reply: str) -> float | None:
    """The preference for answer A a reply states, or None when it states none."""
    found = VERDICT.search(reply)
    return VALUE[found.group(1).lower()] if found else None


def conversation_text(messages: list[dict]) -> str:
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


def judge_prompt(tok: PreTrainedTokenizerBase, template: str, messages: list[dict], a: str, b: str) -> list[int]:
    """The template filled in, through the judge's chat template when it has one."""
    text = template.format(prompt=conversation_text(messages), answer_a=a, answer_b=b)
    if tok.chat_template:
        text = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False)
    return tok(text, add_special_tokens=False)["input_ids"]


def judge_pairs(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    template: str,
    conversations: Sequence[list[dict]],
    first: Sequence[str],
    second: Sequence[str],
    max_new_tokens: int,
) -> Verdicts:
    """Per prompt, the judge's preference for `first` over `second`, asked in both orders.

    Identical answers are a tie without asking.
    """
    asked = [i for i, (x, y) in enumerate(zip(first, second, strict=True)) if x != y]
    prompts = [judge_prompt(tok, template, conversations[i], first[i], second[i]) for i in asked]
    prompts += [judge_prompt(tok, template, conversations[i], second[i], first[i]) for i in asked]
    replies = answer_ids(model, tok, prompts, max_new_tokens)
    verdicts = [parse(r) for r in replies]
    unparsed = sum(v is None for v in verdicts)
    values = [0.5 if v is None else v for v in verdicts]
    preferences = [0.5] * len(first)
    for k, i in enumerate(asked):  # shown first, then shown second: 1 - the preference for the other
        preferences[i] = (values[k] + 1.0 - values[len(asked) + k]) / 2
    return Verdicts(preferences, unparsed, len(replies))
