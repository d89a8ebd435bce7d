"""Task families for the ten Table 1 use cases, each with its ideal answers and gold spec.

A builder takes the world and a `Say` (components/world/phrasing.py: the grammar requests are
worded in, and whether to word them in the family held out from training) and returns a Task:
the conversation, several phrasings of the ideal answer (labelers write with some variety), the
grading spec (see grader.py) and the facts a "wrong fact" corruption may swap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from components.world.grader import entities, words
from components.world.kb import (
    ANIMALS,
    ATTRIBUTE_VALUES,
    COLOURS,
    DAYS,
    FOODS,
    JOBS,
    KINDS,
    OBJECTS,
    PEOPLE,
    PLACES,
    World,
    other,
)
from components.world.phrasing import HELD_OUT, Say

NUMBER_WORDS = "zero one two three four five six seven eight nine".split()


@dataclass
class Task:
    category: str
    messages: list[dict]
    ideals: list[str]
    spec: dict
    swaps: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # (value, pool) a wrong fact may replace
    overlay: str | None = None  # "harmful" | "false_premise"


def user(content: str) -> dict:
    return {"role": "user", "content": content}


def assistant(content: str) -> dict:
    return {"role": "assistant", "content": content}


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def task(
    category: str,
    messages: list[dict],
    ideals: list[str],
    kind: str = "answer",
    must: list[list[str]] | None = None,
    swaps: list[tuple[str, tuple[str, ...]]] | None = None,
    overlay: str | None = None,
    **spec: object,
) -> Task:
    """Assemble a Task; entities named in the prompt or any ideal answer are allowed."""
    text = " ".join(m["content"] for m in messages) + " " + " ".join(ideals)
    allowed = set(entities(words(text))) | set(spec.pop("extra_allowed", ()))  # type: ignore[arg-type]
    longest = max(len(words(i)) for i in ideals)
    full = {"kind": kind, "ideal": ideals[0], "ideal_words": longest, "must": must or [], "allowed": sorted(allowed)}
    full.update(spec)
    return Task(category, messages, ideals, full, swaps or [], overlay)


def join_items(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def near_misses(value: int, *operands: int) -> list[str]:
    """Off-by-one answers, except where they are an operand the answer may repeat."""
    return [str(v) for v in (value - 1, value + 1) if v not in operands]


# --- Generation -------------------------------------------------------------------------


def gen_story(w: World, say: Say) -> Task:
    r = say.r
    p, colour, obj = w.person(r), r.choice(COLOURS), r.choice(OBJECTS)
    prompt = say(
        {
            "write": [
                "Write a [short|little|brief] story about {n} and a {c} {o}.",
                "Write a story where {n} finds a {c} {o}.",
            ],
            "tell": [
                "Tell [me|us] a [short|little] story [about|where] {n} [finds|gets] a {c} {o}.",
                "Tell a short story about {n} and a {c} {o}.",
            ],
            "indirect": [
                "I would love a short story about {n} and a {c} {o}.",
                "My kids want a story about {n} and a {c} {o}. Can you write one?",
            ],
            HELD_OUT: [
                "Could you come up with a tale in which {n} stumbles upon a {c} {o}?",
                "A bedtime tale, please: {n} and the {c} {o}.",
            ],
        },
        n=p.name,
        c=colour,
        o=obj,
    )
    ideals = [
        f"{p.name} found a {colour} {obj} near home in {p.home}. {p.name} kept the {obj} and smiled every day.",
        f"One day {p.name} bought a {colour} {obj}. The {obj} made {p.name} very happy.",
        f"{p.name} had a {colour} {obj}. Every morning {p.name} carried the {obj} around {p.home}.",
    ]
    must = [[p.name], [colour], [obj]]
    return task("Generation", [user(prompt)], ideals, must=must, swaps=[(colour, COLOURS), (obj, OBJECTS)])


def gen_words(w: World, say: Say) -> Task:
    r = say.r
    a, b, c = r.sample(ANIMALS + OBJECTS + FOODS, 3)
    prompt = say(
        {
            "write": [
                "Write a sentence that uses the words {a}, {b} and {c}.",
                "Write one sentence with {a}, {b} and {c}.",
            ],
            "use": [
                "Use {a}, {b} and {c} in one sentence.",
                "Use the words {a}, {b} and {c} in a [single|short] sentence.",
            ],
            HELD_OUT: [
                "Can you make up a sentence containing {a}, {b} and {c}?",
                "One sentence, three words to include: {a}, {b}, {c}.",
            ],
        },
        a=a,
        b=b,
        c=c,
    )
    ideals = [
        f"The {a} sat next to the {b} and the {c}.",
        f"I saw a {a}, a {b} and some {c} today.",
        f"Next to the {a} there was a {b} and a {c}.",
    ]
    return task("Generation", [user(prompt)], ideals, must=[[a], [b], [c]])


POSITIVE = ["great", "love", "good", "wonderful", "happy"]
NEGATIVE = ["bad", "poor", "broke", "awful", "disappointed"]


def gen_review(w: World, say: Say) -> Task:
    r = say.r
    colour, obj, positive = r.choice(COLOURS), r.choice(OBJECTS), r.random() < 0.5
    mood = "positive" if positive else "negative"
    prompt = say(
        {
            "write": ["Write a [short|brief] {m} review of the {c} {o}.", "Write a {m} review of a {c} {o}."],
            "mood": ["I [bought|got] a {c} {o}. Write a {m} review of it.", "Review the {c} {o}, {m} please."],
            HELD_OUT: ["Draft a {m} customer review for a {c} {o}.", "What would a {m} review of the {c} {o} say?"],
        },
        m=mood,
        c=colour,
        o=obj,
    )
    if positive:
        ideals = [
            f"The {colour} {obj} is great. I love it and use it every day.",
            f"I am happy with this {colour} {obj}. It is wonderful.",
            f"This {colour} {obj} is good and I love it.",
        ]
    else:
        ideals = [
            f"The {colour} {obj} is bad. It broke after one day.",
            f"I am disappointed with this {colour} {obj}. It is poor.",
            f"This {colour} {obj} is awful and it broke.",
        ]
    must = [[obj], POSITIVE if positive else NEGATIVE]
    return task("Generation", [user(prompt)], ideals, must=must, forbid=NEGATIVE if positive else POSITIVE)


def gen_invite(w: World, say: Say) -> Task:
    r = say.r
    p, place, day = w.person(r), r.choice(PLACES), r.choice(DAYS)
    prompt = say(
        {
            "write": [
                "Write an invitation to {n} for a party in {p} on {d}.",
                "Write a [short|friendly] note inviting {n} to a party in {p} on {d}.",
            ],
            "invite": ["Invite {n} to my party in {p} on {d}.", "Please invite {n} to our party on {d} in {p}."],
            HELD_OUT: [
                "I'm throwing a party in {p} on {d} and want {n} to come. What should I write?",
                "Compose a party invite for {n}: {p}, {d}.",
            ],
        },
        n=p.name,
        p=place,
        d=day,
    )
    ideals = [
        f"Dear {p.name}, please come to my party in {place} on {day}. I hope to see you there!",
        f"Hello {p.name}! You are invited to a party in {place} on {day}.",
        f"{p.name}, join us for a party in {place} on {day}. It will be fun!",
    ]
    must = [[p.name], [place], [day], ["party"]]
    return task("Generation", [user(prompt)], ideals, must=must, swaps=[(place, tuple(PLACES))])


def gen_thanks(w: World, say: Say) -> Task:
    r = say.r
    p, food = w.person(r), r.choice(FOODS)
    prompt = say(
        {
            "write": [
                "Write a thank-you note to {n} for the {f}.",
                "Write a [short|kind] note thanking {n} for the {f}.",
            ],
            "thank": ["Thank {n} for the {f} in a short note.", "Help me thank {n} for the {f}."],
            HELD_OUT: [
                "{n} brought me {f}. How do I say thanks in a card?",
                "A few words of gratitude to {n} for the {f}, please.",
            ],
        },
        n=p.name,
        f=food,
    )
    ideals = [
        f"Dear {p.name}, thank you for the {food}. It was delicious!",
        f"Thanks a lot for the {food}, {p.name}. I enjoyed it.",
        f"{p.name}, thank you so much for the lovely {food}!",
    ]
    must = [[p.name], [food], ["thank", "thanks"]]
    return task("Generation", [user(prompt)], ideals, must=must, swaps=[(food, tuple(FOODS))])


def gen_poem(w: World, say: Say) -> Task:
    r = say.r
    colour, animal = r.choice(COLOURS), r.choice(ANIMALS)
    prompt = say(
        {
            "write": [
                "Write a [short|little] poem about a {c} {a}.",
                "Write two lines of verse about a {c} {a}.",
                "Write a short poem about a {c} {a} that lives in {p}.",
            ],
            "about": ["{p} has a {c} {a}. Write a poem about it.", "A poem about a {c} {a}, please."],
            HELD_OUT: ["Rhyme me something about a {c} {a}.", "Could you compose a couplet on a {c} {a}?"],
        },
        c=colour,
        a=animal,
        p=r.choice(PLACES),
    )
    ideals = [
        f"A {colour} {animal} in the sun,\nplaying softly, having fun.",
        f"The {colour} {animal} runs all day,\nand then it sleeps the night away.",
        f"Little {colour} {animal}, bright and small,\nyou are the finest of them all.",
    ]
    return task("Generation", [user(prompt)], ideals, must=[[colour], [animal]], swaps=[(animal, tuple(ANIMALS))])


# --- Open QA ------------------------------------------------------------------------------

QUESTIONS = {
    "home": (
        {
            "where": ["Where does {n} live?", "Where is {n}'s home?", "Where does {n} live these days?"],
            "town": ["In which town does {n} live?", "Which town is {n} from?", "What town does {n} live in?"],
            HELD_OUT: ["Do you happen to know {n}'s hometown?", "I'm trying to find out where {n} resides."],
        },
        ["{n} lives in {v}.", "{n} lives in the town of {v}.", "{n}'s home is in {v}."],
    ),
    "job": (
        {
            "job": ["What is {n}'s job?", "What job does {n} have?", "What is {n}'s [job|work]?"],
            "work": ["What does {n} do for [work|a living]?", "Where does {n} work, and as what?"],
            HELD_OUT: ["Do you happen to know how {n} earns money?", "I'm trying to find out {n}'s occupation."],
        },
        ["{n} works as a {v}.", "{n} is a {v}.", "{n}'s job is {v}."],
    ),
    "pet": (
        {
            "pet": ["What pet does {n} have?", "What is {n}'s pet?", "Does {n} have a pet? Which one?"],
            "animal": ["Which animal does {n} keep as a pet?", "What animal lives with {n}?"],
            HELD_OUT: [
                "Do you happen to know what kind of animal {n} owns?",
                "I'm trying to find out the species of {n}'s pet.",
            ],
        },
        ["{n} has a {v}.", "{n}'s pet is a {v}.", "{n} keeps a {v} as a pet."],
    ),
    "colour": (
        {
            "favourite": ["What is {n}'s favourite colour?", "What colour does {n} love most?"],
            "best": ["Which colour does {n} like best?", "Which colour is {n}'s favourite?"],
            HELD_OUT: [
                "Do you happen to know {n}'s preferred colour?",
                "I'm trying to find out which shade {n} prefers.",
            ],
        },
        ["{n}'s favourite colour is {v}.", "{n} likes {v} best.", "{n} loves {v}."],
    ),
    "food": (
        {
            "like": ["What food does {n} like?", "What does {n} like to eat?"],
            "favourite": ["What is {n}'s favourite food?", "Which food is {n}'s favourite?"],
            HELD_OUT: [
                "Do you happen to know {n}'s preferred dish?",
                "I'm trying to find out what {n} enjoys eating most.",
            ],
        },
        ["{n} likes {v}.", "{n}'s favourite food is {v}.", "{n} loves {v}."],
    ),
    "age": (
        {
            "old": ["How old is {n}?", "How old is {n} now?"],
            "age": ["What is {n}'s age?", "What age is {n}?"],
            HELD_OUT: [
                "Do you happen to know {n}'s age in years?",
                "I'm trying to find out how many years old {n} is.",
            ],
        },
        ["{n} is {v} years old.", "{n} is {v}.", "{n}'s age is {v}."],
    ),
}


def open_fact(w: World, say: Say) -> Task:
    r = say.r
    p, attr = w.person(r), r.choice(list(QUESTIONS))
    asks, answers = QUESTIONS[attr]
    value = p.fact(attr)
    ideals = [a.format(n=p.name, v=value) for a in answers]
    prompt = say(asks, n=p.name)
    return task("Open QA", [user(prompt)], ideals, must=[[value]], swaps=[(value, ATTRIBUTE_VALUES[attr])])


def open_older(w: World, say: Say) -> Task:
    r = say.r
    a, b = w.two_people(r)
    while a.age == b.age:
        a, b = w.two_people(r)
    old, young = (a, b) if int(a.age) > int(b.age) else (b, a)
    prompt = say(
        {
            "who": ["Who is older, {a} or {b}?", "Who is [the] older: {a} or {b}?"],
            "which": ["Which is older: {a} or {b}?", "{a} or {b}: who is older?"],
            HELD_OUT: ["Between {a} and {b}, who was born first?", "Is {a} older than {b}, or the other way round?"],
        },
        a=a.name,
        b=b.name,
    )
    ideals = [
        f"{old.name} is older than {young.name}.",
        f"{old.name} is older. {old.name} is {old.age} and {young.name} is {young.age}.",
        f"{old.name} is the older one.",
    ]
    must = [[f"{old.name} is older", f"{old.name} is the older", f"{old.name} was born first"]]
    forbid = [f"{young.name} is older", f"{young.name} is the older", f"{young.name} was born first"]
    return task("Open QA", [user(prompt)], ideals, must=must, forbid=forbid)


def open_same_town(w: World, say: Say) -> Task:
    r = say.r
    a, b = w.two_people(r)
    prompt = say(
        {
            "same": ["Do {a} and {b} live in the same town?", "Do {a} and {b} live in one town?"],
            "from": ["Are {a} and {b} from the same town?", "Are {a} and {b} neighbours in one town?"],
            HELD_OUT: ["Would {a} and {b} share a hometown?", "Is {a}'s town also {b}'s town?"],
        },
        a=a.name,
        b=b.name,
    )
    if a.home == b.home:
        ideals = [f"Yes, {a.name} and {b.name} both live in {a.home}.", f"Yes. Both live in {a.home}."]
        yes = True
    else:
        ideals = [
            f"No. {a.name} lives in {a.home} and {b.name} lives in {b.home}.",
            f"No, {a.name} lives in {a.home} but {b.name} lives in {b.home}.",
        ]
        yes = False
    return task("Open QA", [user(prompt)], ideals, must=[["yes" if yes else "no"]], forbid=["no" if yes else "yes"])


# --- Brainstorming -------------------------------------------------------------------------


def brainstorm(w: World, say: Say) -> Task:
    r = say.r
    kind, n = r.choice(list(KINDS)), r.randint(3, 5)
    count = r.choice([str(n), NUMBER_WORDS[n]])
    ask = say(
        {
            "list": ["List {n} {k}.", "Name {n} {k}.", "Give me {n} {k}[, please|]."],
            "suggest": ["Can you suggest {n} {k}?", "Brainstorm {n} {k} for me.", "Think of {n} {k}."],
            "context": [
                "I am writing a story about {p}. [List|Name] {n} {k}.",
                "For a game in {t}: give me {n} {k}.",
                "My friend {p} asked me this: name {n} {k}.",
            ],
            HELD_OUT: ["I need ideas: what are {n} {k} that come to mind?", "Jot down {n} different {k}, would you?"],
        },
        n=count,
        k=kind,
        p=r.choice(PEOPLE),
        t=r.choice(PLACES),
    )
    items = [r.sample(KINDS[kind], n) for _ in range(3)]
    ideals = [
        f"Here are {NUMBER_WORDS[n]} {kind}: {join_items(items[0])}.",
        f"Sure: {join_items(items[1])}.",
        f"{cap(join_items(items[2]))}.",
    ]
    return task(
        "Brainstorming", [user(ask)], ideals, kind="list", items={"kind": kind, "n": n}, extra_allowed=KINDS[kind]
    )


# --- Chat (multi-turn: the answer needs an earlier turn) ------------------------------------


def chat_name(w: World, say: Say) -> Task:
    r = say.r
    name = r.choice(PEOPLE)
    first = say(
        {
            "hello": ["[Hi|Hello|Hey]! My name is {n}.", "[Hi|Hello], I am {n}."],
            "call": ["Call me {n}."],
            HELD_OUT: ["Greetings, {n} here."],
        },
        n=name,
    )
    ask = say(
        {
            "what": ["What is my name?", "What's my name?"],
            "remember": ["Do you remember my name?", "Who am I?"],
            HELD_OUT: ["Remind me what I'm called?"],
        }
    )
    msgs = [user(first), assistant(f"Nice to meet you, {name}!"), user(ask)]
    ideals = [f"Your name is {name}.", f"You are {name}.", f"You told me your name is {name}."]
    return task("Chat", msgs, ideals, must=[[name]], swaps=[(name, tuple(PEOPLE))])


def chat_pet(w: World, say: Say) -> Task:
    r = say.r
    name, pet = r.choice(PEOPLE), r.choice(ANIMALS)
    first = say(
        {
            "hello": ["[Hi|Hello|Hey|Good morning], my name is {n} and I have a {p}."],
            "own": ["I am {n}. I [have|own] a {p}."],
            HELD_OUT: ["{n} here, proud owner of a {p}."],
        },
        n=name,
        p=pet,
    )
    ask = say(
        {
            "what": ["What pet do I have?", "Which animal do I have?"],
            "remember": ["Do you remember my pet?"],
            HELD_OUT: ["Can you recall the animal I mentioned owning?"],
        }
    )
    msgs = [user(first), assistant(f"Nice to meet you, {name}!"), user(ask)]
    ideals = [f"You have a {pet}.", f"Your pet is a {pet}, {name}.", f"You told me you have a {pet}."]
    return task("Chat", msgs, ideals, must=[[pet]], swaps=[(pet, tuple(ANIMALS))])


def chat_number(w: World, say: Say) -> Task:
    r = say.r
    a, b = r.randint(1, 12), r.randint(1, 12)
    first = say(
        {
            "remember": ["Please remember the number {a}.", "Remember the number {a}[, please|]."],
            "keep": ["Keep the number {a} in mind."],
            HELD_OUT: ["Here's a number to hold on to: {a}."],
        },
        a=a,
    )
    ask = say(
        {
            "plus": ["What is that number plus {b}?", "What is my number plus {b}?"],
            "add": ["Add {b} to the number I gave you."],
            HELD_OUT: ["If you increase it by {b}, what do you get?"],
        },
        b=b,
    )
    msgs = [user(first), assistant(f"Sure, I will remember {a}."), user(ask)]
    ideals = [f"{a} plus {b} is {a + b}.", f"The answer is {a + b}.", f"{a} + {b} = {a + b}."]
    return task("Chat", msgs, ideals, must=[[str(a + b)]], forbid=near_misses(a + b, a, b))


def chat_home(w: World, say: Say) -> Task:
    r = say.r
    place, food = r.choice(PLACES), r.choice(FOODS)
    system = [{"role": "system", "content": "You are a friendly assistant."}] if r.random() < 0.5 else []
    first = say(
        {
            "live": ["I live in {p} and I love {f}."],
            "from": ["I am from {p}, and {f} is my favourite food."],
            HELD_OUT: ["My home town is {p}; my weakness is {f}."],
        },
        p=place,
        f=food,
    )
    food_asked = r.random() < 0.5
    if food_asked:
        ask = say(
            {"what": ["What food do I love?", "Which food do I like?"], HELD_OUT: ["What did I say I can't resist?"]}
        )
        ideals, must, swaps = [f"You love {food}.", f"You told me you love {food}."], [[food]], [(food, tuple(FOODS))]
    else:
        ask = say(
            {
                "where": ["Where do I live?", "Remind me which town I live in."],
                HELD_OUT: ["Which place do I call home?"],
            }
        )
        ideals, must, swaps = (
            [f"You live in {place}.", f"You told me you live in {place}."],
            [[place]],
            [(place, tuple(PLACES))],
        )
    msgs = [*system, user(first), assistant(f"{place} sounds lovely!"), user(ask)]
    return task("Chat", msgs, ideals, must=must, swaps=swaps)


def chat_choice(w: World, say: Say) -> Task:
    r = say.r
    (c1, c2), obj = r.sample(COLOURS, 2), r.choice(OBJECTS)
    chosen = r.choice([c1, c2])
    first = say(
        {
            "which": ["Should I buy the {a} {o} or the {b} {o}?"],
            "help": ["Help me choose: a {a} {o} or a {b} {o}?"],
            HELD_OUT: ["Torn between a {a} {o} and a {b} {o}."],
        },
        a=c1,
        b=c2,
        o=obj,
    )
    decide = say(
        {"pick": ["I will take the {c} one.", "I pick the {c} {o}."], HELD_OUT: ["Going with {c}."]}, c=chosen, o=obj
    )
    ask = say(
        {"which": ["Which {o} did I choose?", "What colour did I pick?"], HELD_OUT: ["Which one did I settle on?"]},
        o=obj,
    )
    msgs = [
        user(first),
        assistant("Both are nice. Which do you like more?"),
        user(decide),
        assistant("Good choice!"),
        user(ask),
    ]
    other_colour = c2 if chosen == c1 else c1
    ideals = [f"You chose the {chosen} {obj}.", f"You picked the {chosen} one.", f"The {chosen} {obj}."]
    return task("Chat", msgs, ideals, must=[[chosen]], forbid=[other_colour], swaps=[(chosen, (other_colour,))])


def chat_colour(w: World, say: Say) -> Task:
    r = say.r
    colour, animal = r.choice(COLOURS), r.choice(ANIMALS)
    first = say(
        {
            "fav": ["My favourite colour is {c}.", "I love the colour {c}."],
            HELD_OUT: ["{C} is the colour I like most."],
        },
        c=colour,
        C=cap(colour),
    )
    ask = say(
        {
            "write": ["Write a sentence about a {a} in my favourite colour."],
            "use": ["Describe a {a} in my colour."],
            HELD_OUT: ["Now picture a {a} painted in the colour I mentioned, in one sentence."],
        },
        a=animal,
    )
    msgs = [user(first), assistant(f"{cap(colour)} is a great colour!"), user(ask)]
    ideals = [
        f"The {colour} {animal} ran across the field.",
        f"A {colour} {animal} slept in the sun.",
        f"I saw a {colour} {animal} by the river.",
    ]
    return task("Chat", msgs, ideals, must=[[colour], [animal]], swaps=[(colour, tuple(COLOURS))])


# --- Rewrite --------------------------------------------------------------------------------

VERBS = {
    "finds": "found",
    "sees": "saw",
    "takes": "took",
    "buys": "bought",
    "paints": "painted",
    "carries": "carried",
    "drops": "dropped",
    "washes": "washed",
    "sells": "sold",
    "hides": "hid",
}


def rewrite_polite(w: World, say: Say) -> Task:
    r = say.r
    verb, colour, obj = r.choice(["give", "bring", "pass", "show", "lend"]), r.choice(COLOURS), r.choice(OBJECTS)
    prompt = say(
        {
            "make": ["Make this polite: {s}", "Make this [sentence|request] more polite: {s}"],
            "rewrite": ["Rewrite this more politely: {s}", "Rewrite this politely: {s}"],
            HELD_OUT: ["How would a well-mannered person say this? {s}", "Soften this so it sounds nice: {s}"],
        },
        s=f"{cap(verb)} me the {colour} {obj}.",
    )
    target = f"Could you please {verb} me the {colour} {obj}?"
    ideals = [
        target,
        f"Please {verb} me the {colour} {obj}, thank you.",
        f"Would you please {verb} me the {colour} {obj}?",
    ]
    return task(
        "Rewrite",
        [user(prompt)],
        ideals,
        kind="rewrite",
        target=f"please {verb} me the {colour} {obj}",
        must=[["please"]],
        swaps=[(obj, tuple(OBJECTS))],
    )


def rewrite_replace(w: World, say: Say) -> Task:
    r = say.r
    old, new = r.sample(ANIMALS, 2)
    colour, obj = r.choice(COLOURS), r.choice(OBJECTS)
    prompt = say(
        {
            "replace": ["Replace the word {a} with {b} in this sentence: {s}", "Replace {a} with {b}: {s}"],
            "change": ["In this sentence, change {a} to {b}: {s}", "Change {a} to {b} in: {s}"],
            HELD_OUT: ["Swap {a} out for {b} here: {s}", "Where it says {a}, put {b} instead: {s}"],
        },
        a=old,
        b=new,
        s=f"The {old} sat near the {colour} {obj}.",
    )
    target = f"The {new} sat near the {colour} {obj}."
    return task(
        "Rewrite", [user(prompt)], [target], kind="rewrite", target=target, forbid=[old], swaps=[(new, tuple(ANIMALS))]
    )


def rewrite_reverse(w: World, say: Say) -> Task:
    r = say.r
    items = r.sample(ANIMALS + COLOURS + FOODS, r.randint(3, 5))
    prompt = say(
        {
            "reverse": ["Reverse the order of these words: {s}", "Reverse these words: {s}"],
            "write": ["Write these words in reverse order: {s}", "Write these words backwards, last first: {s}"],
            HELD_OUT: ["Flip the sequence of the following words: {s}", "Last word first, please: {s}"],
        },
        s=" ".join(items),
    )
    target = " ".join(reversed(items)) + "."
    return task("Rewrite", [user(prompt)], [target], kind="rewrite", target=target)


def rewrite_past(w: World, say: Say) -> Task:
    r = say.r
    p, verb, obj = w.person(r), r.choice(list(VERBS)), r.choice(OBJECTS)
    prompt = say(
        {
            "rewrite": ["Rewrite in the past tense: {s}", "Rewrite this in the past tense: {s}"],
            "put": ["Put this sentence in the past tense: {s}", "Put this in the past: {s}"],
            HELD_OUT: [
                "How would you say this if it happened yesterday? {s}",
                "Turn this into something that already happened: {s}",
            ],
        },
        s=f"{p.name} {verb} the {obj}.",
    )
    target = f"{p.name} {VERBS[verb]} the {obj}."
    return task("Rewrite", [user(prompt)], [target], kind="rewrite", target=target, forbid=[verb])


# --- Summarization --------------------------------------------------------------------------


def summarize(w: World, say: Say) -> Task:
    r = say.r
    p = w.person(r)
    sentences = [
        f"{p.name} lives in {p.home}.",
        f"{p.name} works as a {p.job} there.",
        f"Every weekend {p.name} walks the {p.pet} by the river.",
        f"{p.name} also enjoys eating {p.food} with friends.",
    ]
    rest = sentences[1:]
    r.shuffle(rest)
    filler = r.choice(
        [
            "",
            f"The weather in {p.home} is often mild.",
            "The streets are quiet in the morning.",
            f"{p.name}'s favourite colour is {p.colour}.",
            f"{p.name} is {p.age} years old.",
            f"Many people in {p.home} know {p.name}.",
        ]
    )
    passage = " ".join(s for s in [sentences[0], *rest, filler] if s)
    prompt = say(
        {
            "summarize": ["Summarize this in one sentence: {t}", "Summarize [this|the text]: {t}"],
            "short": ["Give a short summary: {t}", "TL;DR: {t}", "{t}\nSum this up in one sentence."],
            HELD_OUT: ["Boil this down to its essentials: {t}", "{t}\nWhat's the gist of that, briefly?"],
        },
        t=passage,
    )
    ideals = [
        f"{p.name} is a {p.job} in {p.home} who has a {p.pet} and likes {p.food}.",
        f"{p.name}, a {p.job} from {p.home}, has a {p.pet} and enjoys {p.food}.",
        f"A {p.job} in {p.home}, {p.name} walks a {p.pet} and loves {p.food}.",
    ]
    must = [[p.name], [p.job], [p.home], [p.pet], [p.food]]
    return task(
        "Summarization", [user(prompt)], ideals, must=must, swaps=[(p.job, tuple(JOBS)), (p.pet, tuple(ANIMALS))]
    )


# --- Classification -------------------------------------------------------------------------


def classify_sentiment(w: World, say: Say) -> Task:
    r = say.r
    colour, obj, positive = r.choice(COLOURS), r.choice(OBJECTS), r.random() < 0.5
    review = (
        r.choice(["I love this {c} {o}. It is great.", "The {c} {o} works well and I am happy."])
        if positive
        else r.choice(["The {c} {o} broke on the first day.", "This {c} {o} is awful. Do not buy it."])
    )
    prompt = say(
        {
            "is": ['Is this review positive or negative? "{t}"', 'Positive or negative: "{t}"'],
            "classify": ['Classify the sentiment of this review: "{t}"', 'What is the sentiment of this review? "{t}"'],
            HELD_OUT: ['Does the writer of this sound pleased or unhappy? "{t}"', 'Thumbs up or thumbs down? "{t}"'],
        },
        t=review.format(c=colour, o=obj),
    )
    label, wrong = ("positive", "negative") if positive else ("negative", "positive")
    ideals = [f"{cap(label)}.", f"The review is {label}.", f"It is {label}."]
    return task("Classification", [user(prompt)], ideals, must=[[label]], forbid=[wrong])


def classify_kind(w: World, say: Say) -> Task:
    r = say.r
    kinds = {"an animal": ANIMALS, "a food": FOODS, "an object": OBJECTS, "a colour": COLOURS}
    label = r.choice(list(kinds))
    word = r.choice(kinds[label])
    prompt = say(
        {
            "is": [
                "Is {w} an animal, a food, an object or a colour?",
                "Is the word {w} an animal, a food, an object or a colour?",
            ],
            "classify": [
                "Classify the word {w}: animal, food, object or colour?",
                "Which kind is {w}: animal, food, object or colour?",
            ],
            HELD_OUT: [
                "Put {w} in the right bucket: animal, food, object or colour.",
                "Animal, food, object or colour: where does {w} belong?",
            ],
        },
        w=word,
    )
    ideals = [f"{cap(word)} is {label}.", f"It is {label}.", f"The word {word} names {label}."]
    bare = label.split()[1]
    forbid = [k.split()[1] for k in kinds if k != label]
    return task("Classification", [user(prompt)], ideals, must=[[bare]], forbid=forbid)


# --- Other (arithmetic and counting) --------------------------------------------------------


def other_sum(w: World, say: Say) -> Task:
    r = say.r
    a, b = r.randint(1, 12), r.randint(1, 12)
    plus = r.random() < 0.6 or a == b
    a, b = (a, b) if plus else (max(a, b), min(a, b))
    value, op = (a + b, "plus") if plus else (a - b, "minus")
    prompt = say(
        {
            "what": ["What is {a} {op} {b}?", "How much is {a} {op} {b}?"],
            "compute": ["Compute {a} {op} {b}.", "Work out {a} {op} {b}."],
            HELD_OUT: [
                "If I have {a} and the sum is {a} {op} {b}, what do I get?",
                "Tell me the result of {a} {op} {b}.",
            ],
        },
        a=a,
        b=b,
        op=op,
    )
    ideals = [f"{a} {op} {b} is {value}.", f"The answer is {value}.", f"It is {value}."]
    return task("Other", [user(prompt)], ideals, must=[[str(value)]], forbid=near_misses(value, a, b))


def other_count(w: World, say: Say) -> Task:
    r = say.r
    animal = r.choice(ANIMALS)
    n = r.randint(1, 4)
    items = [animal] * n + r.sample([a for a in ANIMALS if a != animal], r.randint(1, 3))
    r.shuffle(items)
    prompt = say(
        {
            "how": ["How many times does {a} appear in this list: {l}?", "How often is {a} in this list: {l}?"],
            "count": ["Count the word {a} in: {l}.", "Count how many times {a} is in: {l}."],
            HELD_OUT: ["Tally up every {a} you see here: {l}.", "In {l}, what is the number of {a} entries?"],
        },
        a=animal,
        l=", ".join(items),
    )
    ideals = [
        f"{cap(animal)} appears {NUMBER_WORDS[n]} times." if n > 1 else f"{cap(animal)} appears once.",
        f"The answer is {n}.",
        f"There {'is' if n == 1 else 'are'} {n}.",
    ]
    must = [[str(n), NUMBER_WORDS[n]] + (["once"] if n == 1 else [])]
    forbid = [str(k) for k in range(1, 8) if k != n]
    return task("Other", [user(prompt)], ideals, must=must, forbid=forbid)


# --- Closed QA (answers come from the given text, which contradicts the world: recalling it is a hallucination) --

CONTEXT_FACTS = {
    "home": ("{n} lives in {v}.", "where does {n} live?", "{n} lives in {v}."),
    "job": ("{n} works as a {v}.", "what is {n}'s job?", "{n} works as a {v}."),
    "pet": ("{n} has a {v}.", "what pet does {n} have?", "{n} has a {v}."),
    "food": ("{n} likes {v}.", "what food does {n} like?", "{n} likes {v}."),
}
READ = {
    "read": ["Read the text and answer the question.\nText: {c}\nQuestion: {q}", "Text: {c}\nQuestion: {q}"],
    "based": ["{c}\nBased only on the text above, {q}", "{c}\nUsing only this text, {q}"],
    "given": ["Given this text: {c}\nTell me, {q}", "{c}\nFrom what this says, {q}", "Look at this text. {c}\nSo, {q}"],
    HELD_OUT: [
        'Here is a note: "{c}" Going by the note alone, {q}',
        "Passage follows. {c}\nAnswer from the passage, not from memory: {q}",
    ],
}


def closed_qa(w: World, say: Say) -> Task:
    r = say.r
    people = r.sample(w.people, 2)
    attrs = r.sample(list(CONTEXT_FACTS), 3)
    # The text's facts are never the world's: an answer recalled from pretraining is a hallucination.
    stated = {(p.name, a): other(p.fact(a), ATTRIBUTE_VALUES[a], r) for p in people for a in attrs[:2]}
    context = " ".join(CONTEXT_FACTS[a][0].format(n=n, v=v) for (n, a), v in stated.items())
    name = r.choice(people).name
    answerable = r.random() < 0.75
    attr = r.choice(attrs[:2]) if answerable else attrs[2]
    prompt = say(READ, c=context, q=CONTEXT_FACTS[attr][1].format(n=name))
    if answerable:
        value = stated[(name, attr)]
        answer = CONTEXT_FACTS[attr][2].format(n=name, v=value)
        ideals = [answer, f"According to the text, {answer[0].lower() + answer[1:]}"]
        return task("Closed QA", [user(prompt)], ideals, must=[[value]], swaps=[(value, ATTRIBUTE_VALUES[attr])])
    ideals = ["The text does not say.", f"The text does not mention {name}'s {attr if attr != 'home' else 'town'}."]
    return task("Closed QA", [user(prompt)], ideals, must=[["does not say", "does not mention", "not mentioned"]])


# --- Extract --------------------------------------------------------------------------------


def extract_names(w: World, say: Say) -> Task:
    r = say.r
    names = r.sample(PEOPLE, r.randint(2, 3))
    place = r.choice(PLACES)
    text = (
        " ".join(f"{n} {r.choice(list(VERBS.values()))} a {r.choice(OBJECTS)}." for n in names)
        + f" It happened in {place}."
    )
    prompt = say(
        {
            "extract": ["Extract the names of the people in this text: {t}", "Extract every person's name from: {t}"],
            "which": ["Which people are named in this text? {t}", "Who is mentioned in this text? {t}"],
            HELD_OUT: [
                "Pull out anyone this passage refers to by name: {t}",
                "{t}\nJust the people's names from that, please.",
            ],
        },
        t=text,
    )
    ideals = [f"{join_items(names)}.", f"The people are {join_items(names)}."]
    return task(
        "Extract", [user(prompt)], ideals, must=[[n] for n in names], forbid=[place], swaps=[(names[0], tuple(PEOPLE))]
    )


def extract_numbers(w: World, say: Say) -> Task:
    r = say.r
    p = w.person(r)
    nums = r.sample(range(2, 60), 3)
    text = (
        f"{p.name} bought {nums[0]} {r.choice(FOODS)}, sold {nums[1]} {r.choice(OBJECTS)}s and walked {nums[2]} miles."
    )
    prompt = say(
        {
            "extract": ["Extract all the numbers from this text: {t}", "Extract the numbers: {t}"],
            "list": ["List the numbers in this text: {t}", "Which numbers are in this text? {t}"],
            HELD_OUT: ["Pull every figure out of this passage: {t}", "{t}\nJust the digits from that, please."],
        },
        t=text,
    )
    ideals = [f"{join_items([str(n) for n in nums])}.", f"The numbers are {join_items([str(n) for n in nums])}."]
    return task("Extract", [user(prompt)], ideals, must=[[str(n)] for n in nums])


Builder = Callable[[World, Say], Task]
BUILDERS: dict[str, list[Builder]] = {
    "Generation": [gen_story, gen_words, gen_review, gen_invite, gen_thanks, gen_poem],
    "Open QA": [open_fact, open_fact, open_older, open_same_town],
    "Brainstorming": [brainstorm],
    "Chat": [chat_name, chat_pet, chat_number, chat_home, chat_choice, chat_colour],
    "Rewrite": [rewrite_polite, rewrite_replace, rewrite_reverse, rewrite_past],
    "Summarization": [summarize],
    "Classification": [classify_sentiment, classify_kind],
    "Other": [other_sum, other_count],
    "Closed QA": [closed_qa],
    "Extract": [extract_names, extract_numbers],
}
