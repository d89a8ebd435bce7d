"""The knowledge base: invented people, towns and things, and the facts that tie them.

Words are single lowercase-able tokens so that the grader can find entities by word match.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

PEOPLE = (
    "Alice Bruno Chen Dara Elif Farid Greta Hugo Ines Jonas Kaya Liam Mira Nils Olga Pablo Quinn Rosa Sami Tara "
    "Umar Vera Wade Xena Yuki Zane Abel Bea Cyrus Dina Emil Fay Gil Hana Ivo Jade Kofi Lena Milo Nora "
    "Omar Pia Rafi Sara Timo Uma Vik Wren Yara Zoe Arlo Beth Cal Dev Esme Finn Gwen Hal Iris Jon"
).split()
PLACES = (
    "Brindle Corvale Dunmere Eskby Fallow Glenrock Harwick Ivydale Juniper Kestrel "
    "Lowmoor Marsden Northby Oakridge Pinecrest Queensby Redfern Stonebury Thornwick Umberlee"
).split()
ANIMALS = "cat dog fox owl horse rabbit goat duck parrot turtle hamster frog sheep pig cow mouse".split()
COLOURS = "red blue green yellow purple orange black white pink brown".split()
OBJECTS = "cup lamp kite book hat chair clock bag bike drum key ball box pen map".split()
FOODS = "bread soup apples cake rice cheese pie pears plums honey noodles carrots".split()
JOBS = "baker teacher doctor farmer pilot painter nurse chef tailor miner singer driver".split()
WORLD_YEAR = 2026  # the world's present: ages count from it
DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()

# Entity type of every word the grader checks for hallucinations (lowercase).
ENTITY_TYPES: dict[str, str] = {
    **{w.lower(): "person" for w in PEOPLE},
    **{w.lower(): "place" for w in PLACES},
    **{w: "animal" for w in ANIMALS},
    **{w: "colour" for w in COLOURS},
    **{w: "object" for w in OBJECTS},
    **{w: "food" for w in FOODS},
    **{w: "job" for w in JOBS},
}
KINDS: dict[str, tuple[str, ...]] = {
    "animals": tuple(ANIMALS),
    "colours": tuple(COLOURS),
    "objects": tuple(OBJECTS),
    "foods": tuple(FOODS),
    "jobs": tuple(JOBS),
}
ATTRIBUTES = ("home", "job", "pet", "colour", "food", "age")
ATTRIBUTE_VALUES: dict[str, tuple[str, ...]] = {
    "home": tuple(PLACES),
    "job": tuple(JOBS),
    "pet": tuple(ANIMALS),
    "colour": tuple(COLOURS),
    "food": tuple(FOODS),
    "age": tuple(str(a) for a in range(18, 81)),
}


@dataclass(frozen=True)
class Person:
    name: str
    home: str
    job: str
    pet: str
    colour: str
    food: str
    age: str

    def fact(self, attribute: str) -> str:
        return getattr(self, attribute)

    def facts(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class World:
    people: tuple[Person, ...]

    def person(self, rng: random.Random) -> Person:
        return rng.choice(self.people)

    def two_people(self, rng: random.Random) -> tuple[Person, Person]:
        a, b = rng.sample(self.people, 2)
        return a, b


def build_world(seed: int) -> World:
    """Assign every person a home, job, pet, favourite colour and food, and an age."""
    rng = random.Random(f"world-{seed}")
    people = tuple(
        Person(
            name=name,
            home=rng.choice(PLACES),
            job=rng.choice(JOBS),
            pet=rng.choice(ANIMALS),
            colour=rng.choice(COLOURS),
            food=rng.choice(FOODS),
            age=str(rng.randint(18, 80)),
        )
        for name in PEOPLE
    )
    return World(people)


def other(value: str, pool: tuple[str, ...] | list[str], rng: random.Random) -> str:
    """A value of the same kind that is not `value` (for wrong facts and false premises)."""
    choice = rng.choice(pool)
    while choice == value:
        choice = rng.choice(pool)
    return choice
