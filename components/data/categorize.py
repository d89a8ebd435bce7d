"""Rule-based use-case categoriser: a prompt (messages) to one of the ten Table 1 categories.

Imported data rarely says which Table 1 use case a prompt belongs to, but validation needs a
category on every record (and compares their mix with Table 1). These rules give a cheap,
deterministic, explainable guess: keyword and regular-expression rules over the last user
turn, tried in order, the first match wins. The order matters where rules overlap: specific
task verbs ("summarize", "extract", "classify", "rewrite") come before shapes ("context +
question", "a list of ideas", "write a ...") and shapes before the weakest signal, a
question, so "Summarize this: what happened?" is Summarization, not Open QA.

| #  | category       | matches (case-insensitive)                                                       |
|----|----------------|----------------------------------------------------------------------------------|
| 1  | Chat           | the conversation already has an assistant turn (multi-turn)                      |
| 2  | Summarization  | summarize/summarise, summary, tl;dr, sum up, gist, key points                    |
| 3  | Extract        | extract, pull out, named entities, find/list all the names/dates/numbers/...     |
| 4  | Classification | classify, categorize, which category, sentiment, "is this positive/spam/..."     |
| 5  | Rewrite        | rewrite, rephrase, paraphrase, translate, proofread, correct/fix the grammar,    |
|    |                | or an opening edit/reword/change/transform/convert/shorten/...                   |
| 6  | Closed QA      | "based on / according to the text", or a context block plus a question           |
| 7  | Brainstorming  | brainstorm, ideas, suggest, list, come up with, "give me 5", "name three", tips  |
| 8  | Generation     | an opening write/compose/draft/create/design/...; story, poem, essay, email, ... |
| 9  | Open QA        | opens with a question word or explain/describe/define/name/..., or ends with "?" |
| 10 | Other          | anything else (arithmetic, sorting, string puzzles, ...)                         |
"""

from __future__ import annotations

import re
from collections.abc import Callable

Predicate = Callable[[list[dict], str], bool]


def _regex(*patterns: str) -> Predicate:
    """A predicate true when any pattern matches the last user turn (case-insensitive)."""
    compiled = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
    return lambda _messages, text: compiled.search(text) is not None


def _opens_with(*verbs: str) -> str:
    """A pattern for a prompt that opens with one of `verbs` (after an optional 'please')."""
    return rf"^\W*(?:please\s+)?(?:{'|'.join(verbs)})\b"


def _has_earlier_assistant_turn(messages: list[dict], _text: str) -> bool:
    # A prompt that already holds an assistant reply is a conversation in progress: Chat,
    # whatever the latest turn asks (the paper's Chat category is exactly this use).
    return any(m.get("role") == "assistant" for m in messages)


# A context block: a blank-line separated part, or an explicit label such as "Context:".
_CONTEXT = re.compile(r"\n\s*\n|\b(?:context|passage|text|article|paragraph|document)\s*:", re.IGNORECASE)
_GROUNDED = re.compile(
    r"\b(?:based on|according to|given|from|using) (?:the|this|that) "
    r"(?:text|passage|article|paragraph|context|document|story|reference|excerpt)\b",
    re.IGNORECASE,
)
_QUESTION = re.compile(r"\?|\b(?:who|what|when|where|why|how|which)\b", re.IGNORECASE)


def _context_and_question(_messages: list[dict], text: str) -> bool:
    # Closed QA answers from a given text: either the prompt says so ("according to the
    # passage"), or it carries a context block and asks a question.
    return bool(_GROUNDED.search(text)) or (bool(_CONTEXT.search(text)) and bool(_QUESTION.search(text)))


_NUMBER = r"\d+|a few|some|several|two|three|four|five|six|seven|eight|nine|ten"
_QUESTION_WORDS = (
    "who|whom|whose|what|when|where|why|how|which|is|are|was|were|can|could|do|does|did",
    "should|would|will|shall|may|might|has|have|had|am",
)

# The ordered rule table: (category, predicate on (messages, last user text)). First match wins.
RULES: tuple[tuple[str, Predicate], ...] = (
    ("Chat", _has_earlier_assistant_turn),
    (
        "Summarization",
        _regex(
            r"\bsummar(?:y|ies|i[sz]e|i[sz]ing)\b",
            r"\btl;?\s?dr\b",
            r"\bsum (?:it |this |that )?up\b",
            r"\bgist\b",
            r"\bkey points\b",
        ),
    ),
    (
        "Extract",
        _regex(
            r"\bextract\w*\b",
            r"\bpull out\b",
            r"\bnamed entit",
            r"\b(?:find|list|identify|get) (?:all|every|each) (?:of )?(?:the )?(?:names?|dates?|numbers?|emails?|"
            r"people|places|locations|entities|keywords|urls?|proper nouns)\b",
        ),
    ),
    (
        "Classification",
        _regex(
            r"\bclassif(?:y|ied|ication)\b",
            r"\bcategori[sz](?:e|ation)\b",
            r"\bwhich category\b",
            r"\bsentiment\b",
            r"\b(?:is|are) (?:this|these|that|the following)(?: \w+)? (?:positive|negative|neutral|spam|sarcastic|"
            r"toxic|offensive|formal|informal)\b",
            r"\bpositive or negative\b",
            r"\blabel (?:the|this|each|these)\b",
        ),
    ),
    (
        "Rewrite",
        _regex(
            r"\bre-?write\b",
            r"\brephrase\b",
            r"\bparaphrase\b",
            r"\btranslat(?:e|ion)\b",
            r"\bproofread\b",
            r"\bin other words\b",
            r"\b(?:correct|fix) (?:the |any |all |this |these )?(?:grammar|spelling|punctuation|sentence|text|"
            r"errors?|mistakes?)\b",
            r"\bmake (?:it|this|the \w+) (?:more|less|sound)\b",
            _opens_with("edit", "reword", "change", "transform", "convert", "replace", "shorten", "simplify", "revise"),
        ),
    ),
    ("Closed QA", _context_and_question),
    (
        "Brainstorming",
        _regex(
            r"\bbrainstorm\w*\b",
            r"\bideas?\b",
            r"\bsuggest(?:ion)?s?\b",
            r"\blist\b",
            r"\bcome up with\b",
            r"\bwhat are some\b",
            rf"\b(?:give|provide|name|suggest|offer)(?: me)? (?:{_NUMBER})\b",
            r"\b(?:tips|ways to)\b",
        ),
    ),
    (
        "Generation",
        _regex(
            _opens_with(
                "write",
                "compose",
                "draft",
                "create",
                "generate",
                "design",
                "construct",
                "develop",
                "formulate",
                "invent",
                "make up",
                "tell me a",
                "complete the following",
            ),
            r"\b(?:story|poem|haiku|limerick|essay|e-?mail|letter|song|lyrics|tweet|slogan|blog post|speech|script)\b",
        ),
    ),
    (
        "Open QA",
        _regex(
            _opens_with(*_QUESTION_WORDS),
            _opens_with(
                "explain", "describe", "define", "name", "identify", "tell me", "compare", "discuss", "outline"
            ),
            r"\?\s*$",
        ),
    ),
)
FALLBACK = "Other"


def last_user_text(messages: list[dict]) -> str:
    """The content of the last user turn ('' when there is none)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return str(message.get("content", ""))
    return ""


def categorize(messages: list[dict]) -> str:
    """The Table 1 category of a prompt: the first rule of RULES that matches, else Other."""
    text = last_user_text(messages).strip()
    for category, matches in RULES:
        if matches(messages, text):
            return category
    return FALLBACK
