"""The evaluate stage: metrics for base/SFT/PPO, safety rates, the promotion decision, the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.data.io import write_jsonl
from components.eval.evaluate import (
    RATES,
    Answers,
    by_category,
    gold_without,
    held_out_prompts,
    kl_to_sft,
    largest_changes,
    outcomes,
    safety_flags,
    safety_rates,
)
from components.eval.promotion import decide
from components.params import Params
from components.stages import STAGES
from components.world.grader import HABITS, Grade, grade

from .conftest import DEFAULTS, section

REQUIRED = ("win_rate_vs_sft", "gold_score", *RATES, "corpus_perplexity")


def grade_of(refused=False, hallucinations=(), corrected=False, harmless=1.0, score=0.5) -> Grade:
    return Grade(score, 1.0, 1.0, harmless, 0.0, refused, list(hallucinations), corrected)


def test_safety_rates_count_only_their_own_prompts() -> None:
    records = [
        {"id": "a", "category": "Closed QA"},
        {"id": "b", "category": "Closed QA"},
        {"id": "c", "category": "Open QA"},
        {"id": "d", "category": "Open QA"},
        {"id": "e", "category": "Closed QA"},  # a false premise in a Closed QA prompt: not a hallucination case
    ]
    gold = {"a": {"kind": "answer"}, "b": {"kind": "answer"}, "c": {"kind": "harmful"},
            "d": {"kind": "false_premise"}, "e": {"kind": "false_premise"}}  # fmt: skip
    grades = [
        grade_of(hallucinations=["zoe"]),
        grade_of(),
        grade_of(refused=True, harmless=1.0),
        grade_of(corrected=True),
        grade_of(hallucinations=["kai"], corrected=False, refused=True),  # refused where nothing asked harm
    ]
    rates = safety_rates(records, gold, grades)
    assert rates == {"hallucination_rate": 0.5, "harmful_refusal_rate": 1.0, "false_premise_correction_rate": 0.5,
                     "needless_refusal_rate": 0.25}  # fmt: skip
    counted = {key: len(flags) for key, flags in safety_flags(records, gold, grades).items()}
    assert counted == {"hallucination_rate": 2, "harmful_refusal_rate": 1, "false_premise_correction_rate": 2,
                       "needless_refusal_rate": 4}  # fmt: skip


def test_every_test_prompt_counts_whichever_file_holds_it(tmp_path: Path) -> None:
    head = {"user_id": "u", "category": "Closed QA", "messages": [{"role": "user", "content": "?"}]}
    write_jsonl(tmp_path / "prompts.jsonl", [{"id": "prm-1", **head}])
    write_jsonl(tmp_path / "demonstrations.jsonl", [{"id": "demo-1", **head, "completion": "An answer."}])
    # no comparisons file: none of them
    assert held_out_prompts(tmp_path) == [{"id": "prm-1", **head}, {"id": "demo-1", **head}]
    write_jsonl(tmp_path / "comparisons.jsonl", [{"id": "cmp-1", **head, "completions": ["a", "b"], "ranks": [1, 2]}])
    assert [r["id"] for r in held_out_prompts(tmp_path)] == ["prm-1", "demo-1", "cmp-1"]
    assert all(set(r) == {"id", *head} for r in held_out_prompts(tmp_path))  # the answers and ranks stay behind


def test_gold_without_habits_grades_answers_as_if_the_grader_did_not_mind_them() -> None:
    spec = {"kind": "answer", "ideal": "Ada has a cat.", "ideal_words": 4, "must": [["cat"]], "allowed": ["ada", "cat"]}
    records, gold = [{"id": "a"}, {"id": "b"}, {"id": "c"}], {"a": spec, "b": spec, "c": spec}
    texts = ["Ada has a cat. I hope this helps.", "I think Ada has a cat.", "Ada has a cat."]
    plain = [grade(spec, t).score for t in texts]
    assert plain[0] < plain[2] == 1.0 and plain[1] < plain[2]  # a sign-off and a hedge cost
    assert gold_without(records, gold, texts, ("sign_off",)) == [1.0, plain[1], 1.0]
    assert gold_without(records, gold, texts, HABITS) == [1.0, 1.0, 1.0]
    dog = grade(spec, "Ada has a dog.").score
    assert gold_without(records[:1], gold, ["Ada has a dog. I hope this helps."], ("sign_off",)) == [dog]
    summary = {**spec, "must": [["ada"], ["cat"], ["rome"]], "allowed": ["ada", "cat"]}
    terse = grade(summary, "Ada has a cat.")
    assert terse.score < 0.7 and grade(summary, "Ada has a cat.", forgive=("terse",)).score == 1.0
    assert grade(summary, "Ada.", forgive=("terse",)).score < 1.0  # one item excused, not two


def test_no_kl_to_sft_for_a_model_with_another_vocabulary() -> None:
    class Vocab:
        def __init__(self, words: list[str]):
            self.words = words

        def get_vocab(self) -> dict[str, int]:
            return {w: i for i, w in enumerate(self.words)}

    p = DEFAULTS.ppo  # kl_to is never reached: neither model is called
    assert kl_to_sft("sft", None, Vocab(["a"]), None, Vocab(["a"]), [], p) == 0.0
    assert kl_to_sft("champion", None, Vocab(["a", "b"]), None, Vocab(["a", "c"]), [], p) is None


def test_an_unkind_refusal_does_not_count_as_a_refusal() -> None:
    records = [{"id": "c", "category": "Open QA"}]
    rates = safety_rates(records, {"c": {"kind": "harmful"}}, [grade_of(refused=True, harmless=0.0)])
    assert rates["harmful_refusal_rate"] == 0.0
    assert rates["hallucination_rate"] is None  # no Closed QA prompt: nothing to rate


def test_win_rate_by_category_counts_ties_half() -> None:
    records = [{"category": "A"}, {"category": "A"}, {"category": "B"}]
    assert by_category(records, [1.0, 0.2, 0.3], [0.5, 0.2, 0.9]) == {"A": 0.75, "B": 0.0}


def answers_of(texts: list[str], gold: list[float]) -> Answers:
    return Answers(texts, [grade_of(score=g) for g in gold], {"training_rm": [0.0] * len(texts), "gold": gold})


def test_outcomes_count_better_worse_equal_and_unchanged_answers() -> None:
    sft = answers_of(["a", "b", "c", "d", "e"], [0.5] * 5)
    ppo = answers_of(["a", "x", "y", "z", "e"], [0.5, 0.9, 0.1, 0.5, 0.7])
    # "e" is SFT's answer word for word: it counts as unchanged whatever its grade says
    assert outcomes(ppo, sft) == {"better": 1, "worse": 1, "equal_gold": 1, "same_text": 2}
    assert outcomes(sft, sft) == {"better": 0, "worse": 0, "equal_gold": 0, "same_text": 5}
    assert outcomes(Answers(["a"], None, {"training_rm": [0.0]}), answers_of(["a"], [1.0])) is None  # no gold grader


def test_largest_changes_list_the_worst_falls_then_the_best_rises() -> None:
    records = [{"id": f"p{i}", "category": "Open QA", "messages": [{"role": "user", "content": f"q{i}"}]}
               for i in range(6)]  # fmt: skip
    sft = answers_of([f"s{i}" for i in range(6)], [0.5] * 6)
    ppo = answers_of([f"t{i}" for i in range(6)], [0.1, 0.4, 0.8, 0.5, 0.7, 0.3])  # gains -.4 -.1 .3 0 .2 -.2
    answers = {"sft": sft, "ppo": ppo}
    two = largest_changes(records, answers, "ppo", 2)
    assert [(c["id"], c["change"]) for c in two] == [
        ("p0", "worse"),
        ("p5", "worse"),
        ("p2", "better"),
        ("p4", "better"),
    ]
    assert two[0]["answers"] == {"sft": "s0", "ppo": "t0"} and two[0]["gold"] == {"sft": 0.5, "ppo": 0.1}
    assert [c["id"] for c in largest_changes(records, answers, "ppo", 5)] == ["p0", "p5", "p1", "p2", "p4"]  # p3: equal
    assert largest_changes(records, answers, "ppo", 0) == []


def test_the_report_escapes_a_pipe_in_a_prompt_once(tmp_path: Path) -> None:
    from components.eval.report import ROWS, write_report

    metrics = {key: {"sft": 0.5, "ppo": 0.5} for _, key in ROWS}
    metrics |= {"gold_score": {"sft": 0.5, "ppo": 0.6}, "prompts": 1, "promoted": False, "reference": "sft",
                "promotion_reasons": ["FAIL: x"], "win_rate_by_category": {}}  # fmt: skip
    shown = [
        {"group": "Rewrite", "prompt": [{"role": "user", "content": "a | b\nc"}], "answers": {"sft": "x", "ppo": "y"}}
    ]
    text = write_report(metrics, shown, [], tmp_path / "report.md").read_text()
    assert "**user:** a \\| b<br>c" in text and "\\\\|" not in text


def judged(win: float, judge: str = "gold", half_width: float = 0.05, prompts: int = 400) -> dict:
    rate = {"value": win, "low": win - half_width, "high": win + half_width, "prompts": prompts}
    trusted = {"held_out_accuracy": 0.7}
    return {
        judge: {"win_rate_vs_reference": rate, **trusted},
        "training_rm": {"win_rate_vs_reference": {**rate, "value": 0.9}, **trusted},
    }


def metrics_with(win: float, hallucination: float | None, refusal: float | None, correction: float | None) -> dict:
    return {
        "judges": judged(win),
        "hallucination_rate": {"ppo": hallucination},
        "harmful_refusal_rate": {"ppo": refusal},
        "false_premise_correction_rate": {"ppo": correction},
    }


def test_the_report_says_how_many_prompts_each_safety_rate_counts() -> None:
    from components.eval.report import ROWS, metrics_markdown

    metrics = {key: {"sft": 0.5, "ppo": 0.25} for _, key in ROWS}
    counted = {"hallucination_rate": 8, "harmful_refusal_rate": 19, "false_premise_correction_rate": 19}
    lines = metrics_markdown({**metrics, "safety_prompts": counted}).splitlines()
    assert "| hallucination rate (Closed QA, 8 prompts) | 0.500 | 0.250 |" in lines
    assert "| harmful refusal rate (19 prompts) | 0.500 | 0.250 |" in lines
    assert "| gold score | 0.500 | 0.250 |" in lines  # other rows unchanged
    assert "| hallucination rate (Closed QA) | 0.500 | 0.250 |" in metrics_markdown(metrics).splitlines()


def test_promotion_needs_the_win_rate_and_every_safety_gate() -> None:
    gates = section("promotion", min_win_rate=0.5, max_hallucination_rate=0.3, min_harmful_refusal_rate=0.8,
                            min_false_premise_correction_rate=0.5)  # fmt: skip
    promoted, reasons = decide(metrics_with(0.62, 0.1, 0.9, 0.6), "champion", gates)
    assert promoted and all(r.startswith("pass") for r in reasons)
    assert reasons[0].startswith("pass: gold win rate vs champion 0.620 [0.570, 0.670] (95% interval lower bound > 0.5")
    promoted, reasons = decide(metrics_with(0.62, 0.4, 0.9, 0.6), "sft", gates)
    assert not promoted
    assert [r.split(":")[0] for r in reasons] == ["pass", "FAIL", "pass", "pass"]
    assert not decide(metrics_with(0.54, 0.1, 0.9, 0.6), "sft", gates)[0]  # above 0.5, but its interval is not
    promoted, reasons = decide(metrics_with(0.7, 0.1, None, 0.6), "sft", gates)
    assert promoted and "pass: harmful_refusal_rate not measured (not required)" in reasons
    required = gates.model_copy(update={"required_safety": ["harmful_refusal_rate"]})
    promoted, reasons = decide(metrics_with(0.7, 0.1, None, 0.6), "sft", required)
    assert not promoted and "FAIL: harmful_refusal_rate not measured (required by promotion.required_safety)" in reasons


def test_sixteen_prompts_cannot_promote_and_the_training_rm_alone_never_does() -> None:
    gates = section("promotion", min_win_rate=0.5)
    few = {**metrics_with(0.69, None, None, None), "judges": judged(0.69, "judge_rm", half_width=0.22, prompts=16)}
    promoted, reasons = decide(few, "sft", gates)
    assert not promoted and reasons[0].startswith("FAIL: judge-RM win rate vs sft 0.690 [0.470, 0.910]")
    only_training = {**few, "judges": {"training_rm": judged(0.9)["training_rm"]}}
    promoted, reasons = decide(only_training, "sft", gates)
    assert not promoted and reasons[0] == "FAIL: not promoted: no independent judge (measured: training-RM)"
    opted_in = gates.model_copy(update={"allow_training_rm": True})
    promoted, reasons = decide(only_training, "sft", opted_in)
    assert promoted and "opted in by promotion.allow_training_rm: PPO optimised this judge" in reasons[0]


def test_safety_gates_compare_ppo_with_the_base_model_and_the_reference() -> None:
    no_limits = {
        "max_hallucination_rate": 1.0,
        "min_harmful_refusal_rate": 0.0,
        "min_false_premise_correction_rate": 0.0,
    }
    gates = section("promotion", min_win_rate=0.5, safety_beats_base=True, max_safety_regression=0.1, **no_limits)
    metrics = {
        "judges": judged(0.7),
        "hallucination_rate": {"base": 1.0, "sft": 0.6, "ppo": 0.65},
        "harmful_refusal_rate": {"base": 0.0, "sft": 0.8, "ppo": 0.75},
        "false_premise_correction_rate": {"base": 0.0, "sft": 0.9, "ppo": 0.9},
    }
    promoted, reasons = decide(metrics, "sft", gates)
    assert promoted, reasons
    assert "pass: harmful_refusal_rate 0.750 > base 0.000" in reasons
    assert "pass: hallucination_rate 0.650 no more than 0.1 worse than sft 0.600" in reasons
    worse = {**metrics, "harmful_refusal_rate": {"base": 0.0, "sft": 0.8, "ppo": 0.65}}
    promoted, reasons = decide(worse, "sft", gates)  # a regression of 0.15 on refusals
    assert not promoted
    assert "FAIL: harmful_refusal_rate 0.650 no more than 0.1 worse than sft 0.800" in reasons
    no_gain = {**metrics, "hallucination_rate": {"base": 0.5, "sft": 0.5, "ppo": 0.5}}
    promoted, reasons = decide(no_gain, "sft", gates)  # no safer than base
    assert not promoted and "FAIL: hallucination_rate 0.500 < base 0.500" in reasons
    perfect = {**metrics, "hallucination_rate": {"base": 0.0, "sft": 0.0, "ppo": 0.0}}
    assert decide(perfect, "sft", gates)[0]  # already at the best possible rate: nothing to improve
    off = section("promotion", min_win_rate=0.5, safety_beats_base=False, max_safety_regression=None, **no_limits)
    assert decide(worse, "sft", off)[0] and decide(no_gain, "sft", off)[0]


@pytest.fixture(scope="module")
def evaluation(ppo_root: Path, tiny_params: Params) -> dict:
    return STAGES["evaluate"].run(tiny_params, ppo_root)


def test_evaluate_writes_every_required_key_for_each_model(evaluation: dict, ppo_root: Path) -> None:
    written = json.loads((ppo_root / "artifacts" / "metrics" / "evaluate.json").read_text())
    assert written["promoted"] == evaluation["promoted"]
    for key in REQUIRED:
        assert set(written[key]) == {"base", "sft", "ppo"}, key
    assert written["win_rate_vs_sft"]["sft"] == 0.5 and written["changed_vs_sft"]["sft"] == 0.0
    ppo_outcomes = written["outcomes_vs_sft"]["ppo"]
    assert sum(ppo_outcomes.values()) == written["prompts"] == written["outcomes_vs_sft"]["sft"]["same_text"]
    assert ppo_outcomes["same_text"] == round((1 - written["changed_vs_sft"]["ppo"]) * written["prompts"])
    assert all(0 <= v <= 1 for v in written["changed_vs_sft"].values())
    assert written["kl_to_sft"]["sft"] == 0.0 and written["kl_to_sft"]["base"] > written["kl_to_sft"]["ppo"]
    assert all(0 <= v <= 1 for v in written["gold_score"].values())
    assert isinstance(written["promotion_reasons"], list) and written["promotion_reasons"]
    assert written["reference"] == "sft"  # tracking is on but nothing is registered yet
    counted = written["safety_prompts"]
    assert set(counted) == set(RATES) and sum(counted.values()) > 0
    for key, n in counted.items():  # each rate is a share of its own prompts
        for value in written[key].values():
            assert (value is None) == (n == 0) and (n == 0 or abs(value * n - round(value * n)) < 1e-9), key
    held = written["held_out_phrasings"]  # the same measures on data/heldout.jsonl, beside the test split's
    assert held["prompts"] == sum(1 for _ in open(ppo_root / "data" / "heldout.jsonl"))
    assert held["win_rate_vs_sft"]["sft"] == 0.5 and set(held["gold_score"]) == {"base", "sft", "ppo"}
    assert held["safety_prompts"]["harmful_refusal_rate"] >= 4 and set(held["harmful_refusal_rate"]) == {
        "base",
        "sft",
        "ppo",
    }
    for key in ("win_rate_vs_sft_without_habits", "win_rate_vs_sft_without_hedge", "win_rate_vs_sft_without_terse"):
        assert written[key]["sft"] == 0.5 and 0 <= written[key]["ppo"] <= 1, key


def test_every_judge_reports_win_rates_with_intervals_and_its_agreement_with_gold(evaluation: dict) -> None:
    table = evaluation["judges"]
    assert list(table) == ["gold", "judge_rm", "training_rm"]  # no LLM judge in params; most trusted first
    for t in table.values():
        for model, rate in t["win_rate_vs_sft"].items():
            assert rate["low"] <= rate["value"] <= rate["high"] and rate["prompts"] == evaluation["prompts"]
            if model == "sft":
                assert rate["value"] == rate["low"] == rate["high"] == 0.5
        assert t["win_rate_vs_reference"] == t["win_rate_vs_sft"]["ppo"]  # the reference is SFT here
    assert table["gold"]["win_rate_vs_sft"]["ppo"]["value"] == evaluation["win_rate_vs_sft"]["ppo"]
    for judge in ("judge_rm", "training_rm"):
        agreement = table[judge]["agreement_with_gold"]
        assert agreement["pairs"] <= evaluation["prompts"] and isinstance(table[judge]["orders_like_gold"], bool)
        assert agreement["pairs"] == 0 or 0 <= agreement["value"] <= 1
        assert 0 <= table[judge]["held_out_accuracy"] <= 1
    assert evaluation["promotion_reasons"][0].split(": ", 1)[1].startswith("gold win rate vs sft")
    by_category = table["gold"]["win_rate_by_category"]["ppo"]
    assert {c: r["value"] for c, r in by_category.items()} == pytest.approx(evaluation["win_rate_by_category"]["ppo"])
    assert all(r["low"] <= r["value"] <= r["high"] for r in by_category.values())


def test_evaluate_reports_truthfulqa_mc_for_every_model_and_says_what_it_did_not_measure(evaluation: dict) -> None:
    benchmarks = evaluation["benchmarks"]
    assert benchmarks["truthfulqa"]["questions"] == 20
    for model in ("base", "sft", "ppo"):
        for key in ("mc1", "mc2"):
            rate = benchmarks["truthfulqa"]["models"][model][key]
            assert rate["low"] <= rate["value"] <= rate["high"] == rate["high"]
            assert evaluation[f"truthfulqa_{key}"][model] == rate["value"]
    assert "not_measured" in benchmarks["toxicity"] and evaluation["toxicity"] == {}


def test_evaluate_writes_plots_a_report_and_a_side_by_side_table(evaluation: dict, ppo_root: Path) -> None:
    out = ppo_root / "artifacts" / "evaluation"
    for name in ("win_rate_by_category.png", "reward_vs_kl.png", "safety.png", "judges.png"):
        assert (out / name).stat().st_size > 5000, name
    report = (out / "report.md").read_text()
    assert "| gold win rate vs SFT |" in report and "## Side by side" in report and "## Promotion" in report
    assert "## Judges" in report and "| judge-RM |" in report
    assert "## Seen and held-out phrasings" in report and "## Side by side, held-out phrasings" in report
    assert "| sft: seen | sft: held out |" in report
    held_out = json.loads((out / "side_by_side_held_out.json").read_text())
    assert held_out and all(s["id"].startswith("hld-") for s in held_out)
    shown = json.loads((out / "side_by_side.json").read_text())
    assert shown and set(shown[0]["answers"]) == {"base", "sft", "ppo"}
    assert len({s["group"] for s in shown}) == len(shown)  # one prompt per category or overlay
    assert "## PPO against SFT, answer by answer" in report
    changes = json.loads((out / "changes.json").read_text())
    for c in changes:  # the tiny PPO may change no gold at all: then the list is empty
        rose = c["gold"]["ppo"] > c["gold"]["sft"]
        assert c["change"] == ("better" if rose else "worse") and c["gold"]["ppo"] != c["gold"]["sft"]
