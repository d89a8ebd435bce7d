"""The data contract: the ten use-case categories of Table 1 and the native file names."""

from __future__ import annotations

# Table 1 of Ouyang et al. (2022): share of each use case in the API prompt set.
TABLE1: dict[str, float] = {
    "Generation": 0.456,
    "Open QA": 0.124,
    "Brainstorming": 0.112,
    "Chat": 0.084,
    "Rewrite": 0.066,
    "Summarization": 0.042,
    "Classification": 0.035,
    "Other": 0.035,
    "Closed QA": 0.026,
    "Extract": 0.019,
}
CATEGORIES: tuple[str, ...] = tuple(TABLE1)
ROLES: tuple[str, ...] = ("system", "user", "assistant")

# Table 6: number of prompts per dataset (labeler + customer), the sizes `data.scale` multiplies.
TABLE6_SFT = 11295 + 1430 + 1550 + 103
TABLE6_RM = 6623 + 26584 + 3488 + 14399
TABLE6_PPO = 31144 + 16185
TABLE6_TEST = 3196

DEMONSTRATIONS = "demonstrations.jsonl"
COMPARISONS = "comparisons.jsonl"
PROMPTS = "prompts.jsonl"
CORPUS = "corpus.jsonl"
KINDS: dict[str, str] = {
    "demonstrations": DEMONSTRATIONS,
    "comparisons": COMPARISONS,
    "prompts": PROMPTS,
    "corpus": CORPUS,
}
JUDGE = "judge"  # users whose comparisons train only the judge reward model (evaluation's, never PPO's)
SPLITS: tuple[str, ...] = ("train", "valid", "test", JUDGE)


def prompt_text(messages: list[dict]) -> str:
    """One string per conversation, used for duplicate and leakage checks."""
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)
