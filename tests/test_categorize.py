"""The rule-based categoriser: crafted prompts for each of the ten Table 1 categories."""

from __future__ import annotations

import pytest

from components.data.categorize import FALLBACK, RULES, categorize
from components.data.schema import CATEGORIES


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


CASES: list[tuple[str, list[dict]]] = [
    ("Generation", user("Write a short story about a dragon who is afraid of the dark.")),
    ("Generation", user("Compose an email to my landlord about the broken heater.")),
    ("Generation", user("I need a poem for my grandmother's birthday")),
    ("Open QA", user("Who was president of the United States in 1955?")),
    ("Open QA", user("Explain how vaccines train the immune system.")),
    ("Open QA", user("why is the sky blue")),
    ("Brainstorming", user("List five ideas for how to regain enthusiasm for my career.")),
    ("Brainstorming", user("What are some good names for a bakery?")),
    ("Brainstorming", user("Give me 10 science fiction books I should read next")),
    (
        "Chat",
        [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Hi, I'm planning a trip to Lisbon."},
            {"role": "assistant", "content": "Lovely! How long will you stay?"},
            {"role": "user", "content": "Five days. What should I not miss?"},
        ],
    ),
    ("Rewrite", user("Rewrite this sentence so it sounds more polite: give me the report now.")),
    ("Rewrite", user("Translate 'good morning' into French.")),
    ("Rewrite", user("Correct the grammar: she don't like apples.")),
    ("Summarization", user("Summarize this for a second-grade student:\n\nJupiter is the fifth planet from the Sun.")),
    ("Summarization", user("Long post about my week at work...\n\ntl;dr:")),
    ("Classification", user("Classify the sentiment of this tweet: 'I loved the new movie!'")),
    ("Classification", user("Is this review positive or negative? The food was cold.")),
    ("Classification", user("Categorize the following fruit as citrus or non-citrus: banana")),
    ("Other", user("Calculate 17 times 23.")),
    ("Other", user("asdf qwerty")),
    (
        "Closed QA",
        user("Answer the question based on the passage below. Who found the key?\n\nPassage: Mia found the key."),
    ),
    ("Closed QA", user("Tom has three cats and a dog.\n\nHow many cats does Tom have?")),
    ("Extract", user("Extract all the dates from this text: We met on 3 May and again on 9 June.")),
    ("Extract", user("Find all the names in the following paragraph: Ann met Bob in Rome.")),
]


@pytest.mark.parametrize(("expected", "messages"), CASES, ids=[f"{c}-{i}" for i, (c, _) in enumerate(CASES)])
def test_crafted_prompt_gets_its_category(expected: str, messages: list[dict]) -> None:
    assert categorize(messages) == expected


def test_every_category_has_a_case_and_rules_name_only_table1_categories() -> None:
    assert {expected for expected, _ in CASES} == set(CATEGORIES)
    assert {category for category, _ in RULES} | {FALLBACK} == set(CATEGORIES)


def test_specific_task_verbs_win_over_a_question() -> None:
    # Rule order: "summarize" comes before the question rule, "classify" before "Closed QA".
    assert categorize(user("Summarize the article: what happened at the summit?")) == "Summarization"
    assert categorize(user("Classify this text:\n\nWhat a great day?")) == "Classification"


def test_only_the_last_user_turn_is_read_and_empty_prompts_are_other() -> None:
    messages = [{"role": "user", "content": "Write a poem."}, {"role": "user", "content": "Calculate 2 + 2."}]
    assert categorize(messages) == "Other"
    assert categorize([]) == "Other"
    assert categorize(user("   ")) == "Other"
