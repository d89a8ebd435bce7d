"""The grammar the world's requests are worded in: families of templates and the surface around them.

A request is one template of one family, its `[a|b|c]` alternatives drawn, wrapped in a greeting or
a lead-in sentence, a closing, sometimes lower case or without its final mark, sometimes with a
typo in a word of its own (never in a name or a value: the grader reads those). A task family has
several template families; the one named `held_out` is never drawn for the training files and
words `data/heldout.jsonl`, the evaluation's prompts in phrasings no model has seen.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

HELD_OUT = "held_out"

OPENINGS = (
    "", "", "", "", "Hi! ", "Hello. ", "Hey, ", "Please help: ", "Quick question: ", "I have a question. ",
    "Good morning! ", "Excuse me, ", "Can you help me? ", "OK, next one. ", "I need some help. ", "Hi there. ",
)  # fmt: skip
CLOSINGS = ("", "", "", "", " Thanks!", " Thank you.", " Thanks in advance.", " Cheers.", " Please.")
ALTERNATIVES = re.compile(r"\[([^\[\]]*)\]")
SLOT = re.compile(r"(\{[a-z_]+\})")


@dataclass(frozen=True)
class Say:
    """Words requests: templates from the training families, or from the held-out family only."""

    r: random.Random
    held_out: bool = False
    typo_rate: float = 0.04

    def __call__(self, families: Mapping[str, Sequence[str]], **slots: object) -> str:
        template = self.r.choice(family_templates(families, self.held_out))
        text = self.fill(template, slots)
        return self.surround(text)

    def fill(self, template: str, slots: Mapping[str, object]) -> str:
        pieces = SLOT.split(expand(template, self.r))
        typed = [p if SLOT.fullmatch(p) else typos(p, self.r, self.typo_rate) for p in pieces]
        return "".join(typed).format(**slots)

    def surround(self, text: str) -> str:
        opening = self.r.choice(OPENINGS)
        first = text.split(maxsplit=1)[0].strip(",.!?:") if text.strip() else ""
        if first == "Please" and "Please" in opening:
            opening = ""
        elif opening.endswith((", ", ": ")) and first in COMMON_CAPITALS:
            text = text[:1].lower() + text[1:]  # "Excuse me, could you ..."
        text = opening + text + self.r.choice(CLOSINGS)
        u = self.r.random()
        if u < 0.08 and text[-1] in ".?!":
            text = text[:-1]  # typed in a hurry
        elif u < 0.16 and text.split(maxsplit=1)[0].strip(",.!?:") in COMMON_CAPITALS:
            text = text[:1].lower() + text[1:]  # never a name: the grader matches names by word
        return text


def family_templates(families: Mapping[str, Sequence[str]], held_out: bool) -> list[str]:
    """The held-out family's templates, or every other family's."""
    if held_out:
        return list(families[HELD_OUT])
    return [t for name, templates in families.items() if name != HELD_OUT for t in templates]


def expand(template: str, r: random.Random) -> str:
    """Each `[a|b|c]` replaced by one of its alternatives."""
    return ALTERNATIVES.sub(lambda m: r.choice(m.group(1).split("|")), template)


COMMON_CAPITALS = frozenset(
    "Hi Hello Hey Please Quick Excuse Can Could Would Good OK What Where Which Who How Why When Is Are Do Does "
    "Tell Write Give List Name Make Rewrite Replace Put Reverse Summarize Classify Compute Count Extract Read "
    "Use Thank Invite Brainstorm Help Remind Add Based Text Question Now My The This In For Draft Compose Jot Pull "
    "Flip Swap Soften Boil Tally Rhyme Between Describe Think Work Here Fine Let Greetings Torn Going Remember Keep "
    "Should If Call Walk Teach Hypothetically Passage Positive Animal Thumbs Sum Explain Any Suggest Come Did "
    "Since Look Given".split()
)


def typos(text: str, r: random.Random, rate: float) -> str:
    """Light typos in the words of TEXT: two letters swapped, one dropped or one doubled."""
    if rate <= 0:
        return text

    def slip(m: re.Match) -> str:
        word = m.group(0)
        if len(word) < 5 or r.random() >= rate:
            return word
        i = r.randrange(1, len(word) - 2)
        kind = r.randrange(3)
        if kind == 0:
            return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        if kind == 1:
            return word[:i] + word[i + 1 :]
        return word[:i] + word[i] + word[i:]

    return re.sub(r"[a-z]+", slip, text)
