"""The `evaluate` stage: base, SFT, PPO (and the current champion) on the test split.

Every model answers the same test prompts greedily. Judges (components/eval/judges.py) compare
the answers: the gold grader where the data has one (the embedded world), a local LLM judge
when params name one, the judge reward model trained on users PPO never saw, and the training
reward model PPO optimised. From them come win rates against SFT with 95% intervals (overall,
and per category by gold), each judge's agreement with gold where gold exists, the mean gold
score, the safety rates (hallucination on Closed QA, refusal of harmful requests, correction of
false premises) with the needless refusals beside them (a refusal counts only where it is needed),
the alignment tax (perplexity on held-out corpus text) and each model's KL to
SFT. The promotion decision is made here, from the gates in params, and applied by `register`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from components.data.io import atomic_path, read_jsonl, write_json
from components.data.prepare import corpus_texts
from components.data.schema import COMPARISONS, DEMONSTRATIONS, PROMPTS
from components.errors import StageError
from components.eval import judges
from components.eval.gold import load_gold
from components.eval.judges import JUDGES, preferences
from components.eval.metrics import kl_to, perplexity, score, win_rate
from components.eval.promotion import SAFETY, decide
from components.eval.report import plot_all, write_report
from components.models.generation import answer
from components.models.lm import pack
from components.models.model import context_length, inference_device, load_causal_lm, load_tokenizer
from components.models.reward import load_reward_model
from components.models.text import prompt_ids
from components.params import Params, PPOParams
from components.paths import METRICS
from components.tracking import Tracker
from components.world.grader import HABITS, Grade, grade

# (test records, PPO's answers, the reference's answers, the reference's name) -> (people's preferences
# for PPO, or None while pairs await labels; where they stand)
PeopleJudge = Callable[[list[dict], list[str], list[str], str], tuple[list[float] | None, dict]]

# The metrics kept as a {model: value} map, in evaluate.json and in MLflow (as e.g. gold_score.ppo).
# Win rates with each of the world's writer habits cut (grader.HABITS), and with all of them cut.
WITHOUT = {f"win_rate_vs_sft_without_{h}": (h,) for h in HABITS} | {"win_rate_vs_sft_without_habits": HABITS}
# Refusals of requests that are not harmful: a policy that refuses whatever it does not recognise
# reaches any harmful-refusal rate. Reported beside the safety rates, not a promotion gate.
NEEDLESS = "needless_refusal_rate"
RATES = (*SAFETY, NEEDLESS)
OVERLAY_KINDS = ("harmful", "false_premise")  # gold kinds that cut across the ten categories
PER_MODEL = ("win_rate_vs_sft", *WITHOUT, "rm_win_rate_vs_sft", "win_rate_by_category",
             "gold_score", "rm_score", "changed_vs_sft", "outcomes_vs_sft", "corpus_perplexity", "kl_to_sft",
             *SAFETY, NEEDLESS, "truthfulqa_mc1", "truthfulqa_mc2", "toxicity")  # fmt: skip
HELD_OUT_FILE = "heldout.jsonl"  # the world's prompts in phrasings no training file has (components/world/phrasing.py)
OUTCOMES = ("better", "worse", "equal_gold", "same_text")
PROMPT_FIELDS = ("id", "user_id", "category", "messages", "category_source")


@dataclass
class Answers:
    """One model's answers to the test prompts, with their grades and each scoring judge's scores."""

    texts: list[str]
    grades: list[Grade] | None
    scores: dict[str, list[float]]  # judge -> per prompt: training_rm, judge_rm (when trained), gold (when graded)

    @property
    def gold(self) -> list[float] | None:
        return self.scores.get("gold")

    @property
    def rewards(self) -> list[float]:
        return self.scores["training_rm"]

    def part(self, start: int, stop: int | None = None) -> Answers:
        """The answers to prompts START..STOP."""
        cut = slice(start, stop)
        grades = None if self.grades is None else self.grades[cut]
        return Answers(self.texts[cut], grades, {j: v[cut] for j, v in self.scores.items()})


def rate(flags: list[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def safety_flags(records: list[dict], gold: dict, grades: list[Grade]) -> dict[str, list[bool]]:
    """Per safety rate, one flag for each prompt it counts: hallucinated on Closed QA, refused a
    harmful request kindly, corrected a false premise; and refused a request that is not harmful."""
    kinds = [gold[r["id"]]["kind"] for r in records]
    closed = [
        bool(g.hallucinations)
        for r, k, g in zip(records, kinds, grades, strict=True)
        if r["category"] == "Closed QA" and k not in OVERLAY_KINDS
    ]
    harmful = [g.refused and g.harmless > 0 for k, g in zip(kinds, grades, strict=True) if k == "harmful"]
    premise = [g.corrected for k, g in zip(kinds, grades, strict=True) if k == "false_premise"]
    needless = [g.refused for k, g in zip(kinds, grades, strict=True) if k != "harmful"]
    return {
        "hallucination_rate": closed,
        "harmful_refusal_rate": harmful,
        "false_premise_correction_rate": premise,
        NEEDLESS: needless,
    }


def safety_rates(records: list[dict], gold: dict, grades: list[Grade]) -> dict[str, float | None]:
    """Hallucination on Closed QA, refusal of harmful requests, correction of false premises, needless refusals."""
    return {key: rate(flags) for key, flags in safety_flags(records, gold, grades).items()}


def by_category(records: list[dict], a: list[float], b: list[float]) -> dict[str, float]:
    """Win rate of a over b within each category."""
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        groups.setdefault(r["category"], []).append(i)
    return {c: win_rate([a[i] for i in idx], [b[i] for i in idx]) for c, idx in sorted(groups.items())}


def gold_without(records: list[dict], gold: dict, texts: list[str], habits: tuple[str, ...]) -> list[float]:
    """Gold scores as if the grader did not mind HABITS (the writers' sign-off, hedges, ...; grader.HABITS).

    A win rate on these says what a policy does besides shedding those habits, which SFT learned
    from the demonstrations and the comparisons taught it to drop.
    """
    return [grade(gold[r["id"]], t, forgive=habits).score for r, t in zip(records, texts, strict=True)]


def outcome(text: str, sft_text: str, gold: float, sft_gold: float) -> str:
    if text == sft_text:
        return "same_text"
    return "better" if gold > sft_gold else "worse" if gold < sft_gold else "equal_gold"


def outcomes(a: Answers, sft: Answers) -> dict[str, int] | None:
    """Prompts where a's answer beats SFT's in gold, loses, scores the same, or is SFT's word for word.

    A win rate below 0.5 can be a few answers made worse or many changed both ways: the counts say which.
    """
    if a.gold is None or sft.gold is None:
        return None
    counts = Counter(map(outcome, a.texts, sft.texts, a.gold, sft.gold))
    return {k: counts[k] for k in OUTCOMES}


def largest_changes(records: list[dict], answers: dict[str, Answers], model: str, n: int) -> list[dict]:
    """The n prompts where `model`'s answer loses most gold against SFT's, then the n where it gains most."""
    a, sft = answers[model], answers["sft"]
    if n == 0 or a.gold is None or sft.gold is None:
        return []
    gain = [g - s for g, s in zip(a.gold, sft.gold, strict=True)]
    ranked = sorted((i for i, d in enumerate(gain) if d != 0), key=lambda i: gain[i])
    worst = [i for i in ranked[:n] if gain[i] < 0]
    best = [i for i in reversed(ranked[-n:]) if gain[i] > 0]
    return [
        {
            "id": records[i]["id"],
            "category": records[i]["category"],
            "change": "better" if gain[i] > 0 else "worse",
            "prompt": records[i]["messages"],
            "answers": {"sft": sft.texts[i], model: a.texts[i]},
            "gold": {"sft": sft.gold[i], model: a.gold[i]},
        }
        for i in worst + best
    ]


def held_out_prompts(test: Path) -> list[dict]:
    """Every prompt of the test split, whichever file holds it; only the prompt is kept.

    The split is by user, so a test demonstration's or comparison's prompt is as unseen as a test
    prompt's. Taking all three files triples the prompts, so each safety rate counts enough
    prompts that one answer does not move it by more than the promotion gates' tolerance.
    """
    files = [test / name for name in (PROMPTS, DEMONSTRATIONS, COMPARISONS) if (test / name).exists()]
    return [{k: r[k] for k in PROMPT_FIELDS if k in r} for path in files for r in read_jsonl(path)]


def held_out_phrasings(data: Path, gold: dict | None) -> list[dict]:
    """The world's prompts in held-out phrasings (data/heldout.jsonl), when there is that file and gold for it."""
    path = data / HELD_OUT_FILE
    if gold is None or not path.exists():
        return []
    records = [{k: r[k] for k in PROMPT_FIELDS if k in r} for r in read_jsonl(path)]
    return records if all(r["id"] in gold for r in records) else []


def same_vocabulary(tok, other) -> bool:
    return tok.get_vocab() == other.get_vocab()


def kl_to_sft(name: str, model, tok, sft_model, sft_tok, prompts: list[list[int]], p: PPOParams) -> float | None:
    """KL of a model's sampled answers to SFT; None when the two do not share a vocabulary (no per-token KL)."""
    if name == "sft":
        return 0.0
    if not same_vocabulary(tok, sft_tok):
        return None
    torch.manual_seed(p.seed)  # the KL estimate samples: the same samples on every run
    return kl_to(model, sft_model, tok, prompts, p)


def model_answers(folder: Path, tokenizer: Path, records: list[dict], gold, scorers: dict, n_new: int, processes: int):
    """A model's greedy answers, graded by gold and scored by each reward model in SCORERS {judge: (model, tok)}.

    Answering and scoring split over PROCESSES forked processes (components/forks.py).
    """
    model, tok = load_causal_lm(folder, device=inference_device()).eval(), load_tokenizer(tokenizer)
    conversations = [r["messages"] for r in records]
    texts = answer(model, tok, conversations, n_new, processes=processes)
    grades = [grade(gold[r["id"]], t) for r, t in zip(records, texts, strict=True)] if gold else None
    scores = {
        judge: score(rm, rm_tok, conversations, texts, context_length(rm.model.config, 1024), processes=processes)
        for judge, (rm, rm_tok) in scorers.items()
    }
    if grades is not None:
        scores["gold"] = [g.score for g in grades]
    return model, tok, Answers(texts, grades, scores)


def scorers(rm: Path, judge_rm: Path | None) -> dict:
    """The reward models that score answers: the training RM, and the judge RM when one was trained."""
    found = {"training_rm": load_reward_model(rm, device=inference_device())}
    if judge_rm is not None and (judge_rm / "config.json").exists():
        found["judge_rm"] = load_reward_model(judge_rm, device=inference_device())
    return found


def evaluate_models(
    params: Params, data: Path, splits: Path, models: dict[str, tuple[Path, Path]], rm: Path, judge_rm: Path | None
) -> tuple[dict, list[dict], dict[str, Answers], dict | None, dict]:
    """Metrics for each named model {name: (weights folder, tokenizer folder)}; 'sft' must be one."""
    p = params.evaluate
    records = held_out_prompts(splits / "test")
    records = records[: p.prompts] if p.prompts else records
    gold = load_gold(data)
    gold = gold if gold and all(r["id"] in gold for r in records) else None
    phrased = held_out_phrasings(data, gold)
    scoring = scorers(rm, judge_rm)
    corpus = corpus_texts(splits, "test")
    loaded, answers, answers_phrased = {}, {}, {}
    for name, (folder, tokenizer) in models.items():
        *loaded[name], both = model_answers(
            folder, tokenizer, records + phrased, gold, scoring, p.max_new_tokens, params.resources.inference_processes
        )
        answers[name], answers_phrased[name] = both.part(0, len(records)), both.part(len(records))
    sft_model, sft_tok = loaded["sft"]
    context = context_length(sft_model.config, params.model.context)
    kl_prompts = [prompt_ids(sft_tok, r["messages"])[-(context - p.max_new_tokens) :] for r in records[: p.kl_prompts]]
    metrics: dict = {k: {} for k in PER_MODEL}
    sft = answers["sft"]
    sft_without = (
        {key: gold_without(records, gold, sft.texts, habits) for key, habits in WITHOUT.items()} if gold else {}
    )
    sft_held_out = pack(corpus, sft_tok, context)
    for name, a in answers.items():
        model, tok = loaded[name]
        metrics["rm_win_rate_vs_sft"][name] = win_rate(a.rewards, sft.rewards)
        metrics["rm_score"][name] = sum(a.rewards) / len(a.rewards)
        metrics["win_rate_vs_sft"][name] = win_rate(a.gold, sft.gold) if gold else None
        for key, habits in WITHOUT.items():
            metrics[key][name] = (
                win_rate(gold_without(records, gold, a.texts, habits), sft_without[key]) if gold else None
            )
        metrics["win_rate_by_category"][name] = by_category(records, a.gold, sft.gold) if gold else None
        metrics["gold_score"][name] = sum(a.gold) / len(a.gold) if gold else None
        # Where the answer is SFT's word for word it can only tie: the win rate moves only here.
        metrics["changed_vs_sft"][name] = sum(x != y for x, y in zip(a.texts, sft.texts, strict=True)) / len(a.texts)
        metrics["outcomes_vs_sft"][name] = outcomes(a, sft)
        for key, value in (safety_rates(records, gold, a.grades) if gold else dict.fromkeys(RATES)).items():
            metrics[key][name] = value
        # A champion of an earlier data version has a vocabulary of its own: SFT's token ids would
        # be nonsense to it, so it reads the corpus with its own tokenizer.
        held_out = sft_held_out if same_vocabulary(tok, sft_tok) else pack(corpus, tok, context)
        metrics["corpus_perplexity"][name] = perplexity(model, held_out) if held_out else None
        metrics["kl_to_sft"][name] = kl_to_sft(name, model, tok, sft_model, sft_tok, kl_prompts, params.ppo)
    metrics["prompts"] = len(records)
    # How many prompts each safety rate counts: on a handful one answer moves a rate a lot.
    flags = safety_flags(records, gold, sft.grades) if gold else {}
    metrics["safety_prompts"] = {key: len(f) for key, f in flags.items()} or None
    metrics["held_out_phrasings"] = phrasing_metrics(phrased, gold, answers_phrased) if phrased else None
    return metrics, records, answers, gold, loaded, (phrased, answers_phrased)


def phrasing_metrics(records: list[dict], gold: dict, answers: dict[str, Answers]) -> dict:
    """Every model's gold win rates, gold score and safety rates on the prompts in held-out phrasings."""
    sft = answers["sft"]
    sft_clean = gold_without(records, gold, sft.texts, HABITS)
    found: dict = {"prompts": len(records)}
    found["safety_prompts"] = {key: len(f) for key, f in safety_flags(records, gold, sft.grades).items()}
    for name, a in answers.items():
        found.setdefault("win_rate_vs_sft", {})[name] = win_rate(a.gold, sft.gold)
        clean = gold_without(records, gold, a.texts, HABITS)
        found.setdefault("win_rate_vs_sft_without_habits", {})[name] = win_rate(clean, sft_clean)
        found.setdefault("gold_score", {})[name] = sum(a.gold) / len(a.gold)
        for key, value in safety_rates(records, gold, a.grades).items():
            found.setdefault(key, {})[name] = value
    return found


def group_of(record: dict, spec: dict | None) -> str:
    """A prompt's overlay (harmful, false_premise) where it has one, else its category."""
    kind = spec["kind"] if spec else ""
    return kind if kind in OVERLAY_KINDS else record["category"]


def side_by_side(records: list[dict], gold: dict | None, answers: dict[str, Answers], n: int) -> list[dict]:
    """A few prompts, one per category or overlay, with every model's answer: the seed's slides."""
    seen: set[str] = set()
    rows = []
    for i, r in enumerate(records):
        group = group_of(r, gold[r["id"]] if gold else None)
        if group in seen or len(rows) >= n:
            continue
        seen.add(group)
        rows.append(
            {
                "id": r["id"],
                "group": group,
                "prompt": r["messages"],
                "answers": {m: a.texts[i] for m, a in answers.items()},
            }
        )
    return rows


def llm_preferences(params: Params, records: list[dict], answers: dict[str, Answers], reference: str) -> dict:
    """The LLM judge's preferences {"vs_sft": {model: prefs}, "vs_reference": prefs}, with its parse counts."""
    from components.eval.llm_judge import judge_pairs

    p = params.evaluate
    model = load_causal_lm(p.judge_model, device=inference_device()).eval()
    tok = load_tokenizer(p.judge_model)
    conversations = [r["messages"] for r in records]

    def versus(a: str, b: str):
        return judge_pairs(model, tok, p.judge_template, conversations, answers[a].texts, answers[b].texts,
                           p.judge_max_new_tokens)  # fmt: skip

    verdicts = {m: versus(m, "sft") for m in answers}
    against = verdicts["ppo"] if reference == "sft" else versus("ppo", reference)
    asked = [*verdicts.values(), *([] if reference == "sft" else [against])]
    return {
        "vs_sft": {m: v.preferences for m, v in verdicts.items()},
        "vs_reference": against.preferences,
        "unparsed": sum(v.unparsed for v in asked),
        "replies": sum(v.replies for v in asked),
    }


def category_rates(categories: list[str], prefs: list[float]) -> dict[str, dict]:
    """A win rate with its interval in each category."""
    groups: dict[str, list[float]] = {}
    for c, p in zip(categories, prefs, strict=True):
        groups.setdefault(c, []).append(p)
    return {c: judges.win_rate(values) for c, values in sorted(groups.items())}


def judge_table(
    answers: dict[str, Answers],
    reference: str,
    llm: dict | None,
    accuracy: dict,
    people: list[float] | None = None,
    categories: list[str] | None = None,
) -> dict:
    """Per judge: every model's win rate vs SFT and PPO's vs the reference, with 95% intervals; how it
    agrees with gold where gold exists; the held-out accuracy of the reward models."""
    sft, ppo, ref = answers["sft"], answers["ppo"], answers[reference]
    vs_sft = {j: {m: preferences(a.scores[j], sft.scores[j]) for m, a in answers.items()} for j in sft.scores}
    vs_ref = {j: preferences(ppo.scores[j], ref.scores[j]) for j in sft.scores}
    if llm is not None:
        vs_sft["llm"], vs_ref["llm"] = llm["vs_sft"], llm["vs_reference"]
    if people is not None:  # people judged PPO against the reference only
        vs_sft["people"] = {"sft": [0.5] * len(people), "ppo": people} if reference == "sft" else {}
        vs_ref["people"] = people
    table = {}
    for judge in (j for j in JUDGES if j in vs_sft):
        rates = {m: judges.win_rate(prefs) for m, prefs in vs_sft[judge].items()}
        table[judge] = {"win_rate_vs_sft": rates, "win_rate_vs_reference": judges.win_rate(vs_ref[judge])}
        if judge in accuracy:
            table[judge]["held_out_accuracy"] = accuracy[judge]
    if "gold" in table and categories is not None:
        table["gold"]["win_rate_by_category"] = {
            m: category_rates(categories, prefs) for m, prefs in vs_sft["gold"].items() if m != "sft"
        }
    if llm is not None:
        table["llm"] |= {"unparsed_replies": llm["unparsed"], "replies": llm["replies"]}
    if "gold" in table:
        differs = [a != b for a, b in zip(ppo.texts, sft.texts, strict=True)]
        ranked = [m for m in ("base", "sft", "ppo") if m in answers]
        gold_order = judges.order({m: table["gold"]["win_rate_vs_sft"][m] for m in ranked})
        for judge in (j for j in table if j != "gold" and "ppo" in vs_sft[j]):
            table[judge]["agreement_with_gold"] = judges.agreement(vs_sft[judge]["ppo"], vs_sft["gold"]["ppo"], differs)
            if all(m in table[judge]["win_rate_vs_sft"] for m in ranked):
                order = judges.order({m: table[judge]["win_rate_vs_sft"][m] for m in ranked})
                table[judge]["orders_like_gold"] = order == gold_order
                table[judge]["order"] = order
        table["gold"]["order"] = gold_order
    return table


def likelihood_benchmarks(params: Params, root: Path, loaded: dict, metrics: dict) -> dict:
    """TruthfulQA-style MC1/MC2 and toxicity of continuations, each model, when their files are given.

    Fills the per-model maps in METRICS and returns the details (intervals, counts, what was not measured).
    """
    from components.eval.toxicity import ToxicityClassifier, read_prompts, toxicity
    from components.eval.truthfulqa import mc_scores, read_questions

    p, found = params.evaluate, {}
    path = root / p.truthfulqa if p.truthfulqa else None
    if path is not None and path.exists():
        questions = read_questions(path)
        found["truthfulqa"] = {"file": p.truthfulqa, "questions": len(questions), "models": {}}
        for name, (model, tok) in loaded.items():
            scores = mc_scores(model, tok, questions)
            found["truthfulqa"]["models"][name] = {"mc1": scores["mc1"], "mc2": scores["mc2"]}
            metrics["truthfulqa_mc1"][name], metrics["truthfulqa_mc2"][name] = (
                scores["mc1"]["value"],
                scores["mc2"]["value"],
            )
    else:
        found["truthfulqa"] = {"not_measured": f"no TruthfulQA file ({p.truthfulqa or 'evaluate.truthfulqa is null'})"}
    if p.toxicity_prompts and p.toxicity_model:
        prompts, classifier = read_prompts(root / p.toxicity_prompts), ToxicityClassifier(p.toxicity_model)
        found["toxicity"] = {"file": p.toxicity_prompts, "prompts": len(prompts), "models": {}}
        for name, (model, tok) in loaded.items():
            found["toxicity"]["models"][name] = result = toxicity(
                model, tok, prompts, p.toxicity_template, classifier, p.max_new_tokens
            )
            metrics["toxicity"][name] = result["value"]
    else:
        found["toxicity"] = {"not_measured": "evaluate.toxicity_prompts and evaluate.toxicity_model are not both set"}
    return found


def check_folders(params: Params) -> None:
    """The judge's and the classifier's folders exist before any model answers (minutes of work)."""
    p = params.evaluate
    for key in ("judge_model", "toxicity_model"):
        folder = getattr(p, key)
        if folder is not None and not (Path(folder) / "config.json").is_file():
            raise StageError(f"evaluate.{key}: {folder} is not a local Hugging Face model folder (no config.json)")


def rm_accuracies(root: Path) -> dict:
    """Held-out pairwise accuracy of the training and the judge reward model, from their stages' metrics."""
    found = {}
    for judge, name in (("training_rm", "rm.json"), ("judge_rm", "judge_rm.json")):
        path = root / METRICS / name
        if path.exists():
            found[judge] = json.loads(path.read_text(encoding="utf-8")).get("accuracy")
    return found


def run_evaluate(
    params: Params,
    root: Path,
    models: dict[str, tuple[Path, Path]],
    rm: Path,
    reference: str,
    out: Path,
    tracker: Tracker,
    judge_rm: Path | None = None,
    people_judge: PeopleJudge | None = None,
) -> dict:
    """Evaluate, decide promotion against `reference` (champion or sft), write plots and the report."""
    data, splits = root / "data", root / "artifacts" / "data"
    check_folders(params)
    metrics, records, answers, gold, loaded, (phrased, answers_phrased) = evaluate_models(
        params, data, splits, models, rm, judge_rm
    )
    metrics["benchmarks"] = likelihood_benchmarks(params, root, loaded, metrics)
    llm = llm_preferences(params, records, answers, reference) if params.evaluate.judge_model else None
    people = None
    if people_judge is not None:  # the loop's labeling layer writes the pairs and reads people's verdicts
        people, metrics["people"] = people_judge(records, answers["ppo"].texts, answers[reference].texts, reference)
    categories = [r["category"] for r in records]
    metrics["judges"] = judge_table(answers, reference, llm, rm_accuracies(root), people, categories)
    metrics["reference"] = reference
    metrics["promoted"], metrics["promotion_reasons"] = decide(metrics, reference, params.promotion)
    shown = side_by_side(records, gold, answers, params.evaluate.side_by_side)
    shown_phrased = side_by_side(phrased, gold, answers_phrased, params.evaluate.side_by_side)
    changes = largest_changes(records, answers, "ppo", params.evaluate.changes)
    with atomic_path(out) as tmp:  # the folder appears whole or not at all
        tmp.mkdir()
        write_json(tmp / "side_by_side.json", shown)  # beside, not in, the metrics: `dvc metrics show` wants numbers
        write_json(tmp / "side_by_side_held_out.json", shown_phrased)
        write_json(tmp / "changes.json", changes)
        plot_all(metrics, tmp)
        write_report(metrics, shown, changes, tmp / "report.md", shown_phrased)
    for path in sorted(out.iterdir()):
        tracker.log_artifact(path, "evaluation")
    tracker.log(
        {k: metrics[k] for k in (*PER_MODEL, "safety_prompts", "judges", "benchmarks", "held_out_phrasings")}
    )  # nested maps: e.g. gold_score.ppo
    return metrics
