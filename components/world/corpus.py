"""Pretraining text about the same world: facts, stories, reviews, question lists, dialogues.

A model pretrained on this knows the world but continues text instead of following
instructions, as GPT-3 does in the paper's examples.
"""

from __future__ import annotations

import random

from components.world.kb import ANIMALS, COLOURS, DAYS, FOODS, KINDS, OBJECTS, World
from components.world.phrasing import expand, family_templates
from components.world.tasks import CONTEXT_FACTS, QUESTIONS, join_items


def facts(w: World, r: random.Random) -> str:
    p = w.person(r)
    sentences = [
        f"{p.name} lives in {p.home}.",
        f"{p.name} works as a {p.job}.",
        f"{p.name} has a {p.pet}.",
        f"{p.name}'s favourite colour is {p.colour}.",
        f"{p.name} likes {p.food}.",
        f"{p.name} is {p.age} years old.",
    ]
    return " ".join(r.sample(sentences, r.randint(4, 6)))


def story(w: World, r: random.Random) -> str:
    a, b = w.two_people(r)
    obj, colour = r.choice(OBJECTS), r.choice(COLOURS)
    return (
        f"One morning {a.name} walked through {a.home} with a {colour} {obj}. {a.name} met {b.name}, "
        f"who was out with a {b.pet}. They shared some {a.food} and talked until the evening."
    )


def review(w: World, r: random.Random) -> str:
    obj, colour = r.choice(OBJECTS), r.choice(COLOURS)
    return r.choice(
        [
            f"Review: the {colour} {obj} is great. I love it.",
            f"Review: the {colour} {obj} broke after a week.",
            f"Review: this {colour} {obj} works well and I am happy.",
            f"Review: the {colour} {obj} is awful.",
        ]
    )


def questions(w: World, r: random.Random) -> str:
    """Questions with no answers: a base model learns to continue a question with another."""
    asks = [
        expand(r.choice(family_templates(QUESTIONS[attr][0], held_out=False)), r).format(n=w.person(r).name)
        for attr in r.sample(list(QUESTIONS), 4)
    ]
    return "Questions: " + " ".join(asks)


def dialogue(w: World, r: random.Random) -> str:
    a, b = w.two_people(r)
    return (
        f"{a.name}: Hello {b.name}! How is your {b.pet}? {b.name}: My {b.pet} is fine, thank you. "
        f"{a.name}: I am going to {a.home} now. {b.name}: Have a nice day."
    )


def arithmetic(w: World, r: random.Random) -> str:
    lines = []
    for _ in range(3):
        x, y = r.randint(1, 12), r.randint(1, 12)
        lines.append(
            f"{x} plus {y} is {x + y}." if r.random() < 0.6 else f"{max(x, y)} minus {min(x, y)} is {abs(x - y)}."
        )
    return " ".join(lines)


def lists(w: World, r: random.Random) -> str:
    kind = r.choice(list(KINDS))
    return f"Some {kind}: {join_items(r.sample(KINDS[kind], 4))}."


def passage(w: World, r: random.Random) -> str:
    p = w.person(r)
    return " ".join(CONTEXT_FACTS[a][0].format(n=p.name, v=p.fact(a)) for a in r.sample(list(CONTEXT_FACTS), 3))


def animals(w: World, r: random.Random) -> str:
    return f"The {r.choice(COLOURS)} {r.choice(ANIMALS)} ate some {r.choice(FOODS)} near the {r.choice(OBJECTS)}."


def letter(w: World, r: random.Random) -> str:
    a, b = w.two_people(r)
    return r.choice(
        [
            f"Dear {b.name}, thank you for the {a.food}. It was delicious! See you in {a.home}. Love, {a.name}",
            f"Dear {b.name}, please come to my party in {a.home} on {r.choice(DAYS)}. See you there! {a.name}",
            f"Hello {b.name}, could you please lend me the {r.choice(COLOURS)} {r.choice(OBJECTS)}? Thanks, {a.name}",
        ]
    )


def poem(w: World, r: random.Random) -> str:
    colour, animal = r.choice(COLOURS), r.choice(ANIMALS)
    return f"A poem. The {colour} {animal} runs all day, and then it sleeps the night away. It does not say a word."


def diary(w: World, r: random.Random) -> str:
    p = w.person(r)
    verbs = r.sample(["found", "saw", "took", "bought", "painted", "carried", "dropped", "washed", "sold", "hid"], 2)
    return (
        f"Diary of {p.name}. Yesterday I {verbs[0]} a {r.choice(OBJECTS)} and {verbs[1]} a {r.choice(OBJECTS)}. "
        f"Today I walked {r.randint(2, 9)} miles around {p.home}. I never moved away from {p.home}."
    )


# Facts weigh most: the world's people are what a base model must know to answer about them and to
# correct a false premise, as GPT-3 knew Columbus's dates.
DOCS = [
    facts,
    facts,
    facts,
    facts,
    facts,
    story,
    review,
    questions,
    dialogue,
    arithmetic,
    lists,
    passage,
    animals,
    letter,
    poem,
    diary,
]


def corpus(w: World, r: random.Random, n: int) -> list[dict]:
    return [{"id": f"doc-{i:06d}", "text": r.choice(DOCS)(w, r)} for i in range(n)]
