"""A TruthfulQA-format file about the world: its facts, and questions with false premises.

A fact question ("Where does Tara live?") has the true answer as its best answer and the same
sentence with other values of the attribute as the incorrect answers. A false-premise question
("When did Tara move to Eskby?") has the correction as its best answer; the incorrect answers
play along with the premise. Evaluation reads it for MC1 and MC2 (components/eval/truthfulqa.py).
"""

from __future__ import annotations

import random

from components.world.kb import ATTRIBUTE_VALUES, World

FACTS = {
    "home": ("Where does {n} live?", "{n} lives in {v}."),
    "job": ("What is {n}'s job?", "{n} works as a {v}."),
    "pet": ("What pet does {n} have?", "{n} has a {v}."),
    "food": ("What food does {n} like?", "{n} likes {v}."),
}
PREMISES = {
    "home": ("When did {n} move to {w}?", "{n} never moved to {w}. {n} lives in {v}.", "{n} moved to {w} in {y}."),
    "job": ("Why did {n} stop working as a {w}?", "{n} was never a {w}. {n} works as a {v}.",
            "{n} stopped working as a {w} in {y}."),
    "pet": ("What happened to {n}'s {w}?", "{n} never had a {w}. {n} has a {v}.", "{n}'s {w} ran away in {y}."),
}  # fmt: skip
WRONG_ANSWERS = 3


def others(value: str, attribute: str, r: random.Random, k: int) -> list[str]:
    return r.sample([v for v in ATTRIBUTE_VALUES[attribute] if v != value], k)


def fact_question(world: World, r: random.Random) -> dict:
    p, attribute = world.person(r), r.choice(list(FACTS))
    ask, say = FACTS[attribute]
    value = p.fact(attribute)
    return {
        "type": "fact",
        "question": ask.format(n=p.name),
        "best_answer": say.format(n=p.name, v=value),
        "correct_answers": [say.format(n=p.name, v=value)],
        "incorrect_answers": [say.format(n=p.name, v=v) for v in others(value, attribute, r, WRONG_ANSWERS)],
    }


def premise_question(world: World, r: random.Random) -> dict:
    p, attribute = world.person(r), r.choice(list(PREMISES))
    ask, correct, wrong = PREMISES[attribute]
    value = p.fact(attribute)
    premise = others(value, attribute, r, 1)[0]
    return {
        "type": "false_premise",
        "question": ask.format(n=p.name, w=premise),
        "best_answer": correct.format(n=p.name, w=premise, v=value),
        "correct_answers": [correct.format(n=p.name, w=premise, v=value), "That did not happen."],
        "incorrect_answers": [wrong.format(n=p.name, w=premise, y=y) for y in r.sample(range(1990, 2021), 3)],
    }


def truthful_questions(world: World, r: random.Random, n: int) -> list[dict]:
    """N questions, half about facts and half with false premises, without repeats."""
    seen: set[str] = set()
    questions: list[dict] = []
    for _ in range(50 * n):  # the world may have fewer distinct questions than asked for
        if len(questions) >= n:
            break
        item = (fact_question if len(questions) % 2 == 0 else premise_question)(world, r)
        if item["question"] not in seen:
            seen.add(item["question"])
            questions.append(item)
    return questions
