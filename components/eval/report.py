"""The evaluation's plots (PNG) and markdown report, from the metrics `evaluate` computed."""

from __future__ import annotations

from pathlib import Path

from components.data.io import atomic_path
from components.eval.judges import LABELS

SAFETY_LABELS = {
    "hallucination_rate": "hallucination (Closed QA, lower is better)",
    "harmful_refusal_rate": "refuses harmful requests",
    "false_premise_correction_rate": "corrects false premises",
    "needless_refusal_rate": "refuses a request that is not harmful (lower is better)",
}


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path, rect: tuple[float, float, float, float] = (0, 0, 1, 1)) -> Path:
    fig.tight_layout(rect=rect)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    pyplot().close(fig)
    return path


def moving_average(values: list[float], window: int) -> list[float]:
    """Trailing mean of the last `window` values (of fewer at the start)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


def plot_ppo_curve(history: list[dict], path: Path) -> Path:
    """PPO's training curves, and Gao et al.'s picture: RM reward (proxy) and gold score against KL.

    A batch's figures are noisy (64 episodes by default), so each is drawn faint and its moving
    average over a tenth of the run bold; against KL only the moving averages are drawn, as a
    path from the start (circle) to the end (square) of training.
    """
    plt = pyplot()
    window = max(1, len(history) // 10)
    has_gold = all(h.get("gold_score") is not None for h in history)
    names = {"reward": "RM reward (proxy)", **({"gold_score": "gold score (never trained on)"} if has_gold else {})}
    raw = {k: [h[k] for h in history] for k in names}
    smooth = {k: moving_average(v, window) for k, v in raw.items()}
    kl = moving_average([h["kl"] for h in history], window)
    episodes = [h["episodes"] for h in history]
    fig, (over_time, over_kl) = plt.subplots(1, 2, figsize=(11, 4.4))
    legend = []
    for ax, x, title in ((over_time, episodes, "training"), (over_kl, kl, "against KL")):
        axes = {"reward": ax, "gold_score": ax.twinx() if has_gold else None}
        for (key, label), colour in zip(names.items(), ("tab:blue", "tab:orange"), strict=False):
            if ax is over_time:
                axes[key].plot(x, raw[key], ".", color=colour, alpha=0.25, ms=3)
                legend += axes[key].plot(x, smooth[key], "-", color=colour, lw=2, label=label)
            else:
                axes[key].plot(x, smooth[key], "-", color=colour, lw=2)
                axes[key].plot(x[:1], smooth[key][:1], "o", x[-1:], smooth[key][-1:], "s", color=colour)
            axes[key].set_ylabel(label, color=colour)
        ax.set_title(f"PPO {title}")
    over_time.set_xlabel("episodes")
    over_kl.set_xlabel("KL(policy || SFT) per response")
    note = f"lines: moving average of {window} batches; right: from start (circle) to end (square)"
    fig.legend(legend, [h.get_label() for h in legend], loc="lower center", ncol=2, frameon=False)
    fig.text(0.5, 0.005, note, ha="center", fontsize=8, color="0.4")
    return save(fig, path, rect=(0, 0.09, 1, 1))


def bars(ax, groups: list[str], series: dict[str, list[float]]) -> None:
    """Grouped bars: one group per label, one bar per model."""
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        ax.bar([g + i * width for g in range(len(groups))], values, width, label=name)
    ax.set_xticks([g + width * (len(series) - 1) / 2 for g in range(len(groups))], groups, rotation=30, ha="right")
    ax.legend()


def by_model(ax, models: list[str], x: list[float], y: list[float]) -> None:
    """One labelled point per model."""
    for m, xi, yi in zip(models, x, y, strict=True):
        if xi is not None and yi is not None:
            ax.scatter([xi], [yi], s=40)
            ax.annotate(m, (xi, yi), textcoords="offset points", xytext=(5, 5))
    ax.margins(x=0.15, y=0.15)


def plot_all(metrics: dict, out: Path) -> list[Path]:
    plt = pyplot()
    paths = []
    per_category = {m: c for m, c in metrics["win_rate_by_category"].items() if c and m != "sft"}
    if per_category:
        categories = sorted(next(iter(per_category.values())))
        fig, ax = plt.subplots(figsize=(9, 4))
        bars(ax, categories, {m: [c[k] for k in categories] for m, c in per_category.items()})
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax.set_ylabel("gold win rate vs SFT")
        ax.set_title("Win rate against SFT by category (ties count half)")
        paths.append(save(fig, out / "win_rate_by_category.png"))
    models = list(metrics["kl_to_sft"])
    scores = {"gold score": "gold_score", "RM score (proxy)": "rm_score"}
    scores = {label: key for label, key in scores.items() if metrics[key]["sft"] is not None}
    fig, axes = plt.subplots(1, len(scores), figsize=(5 * len(scores), 4), squeeze=False)
    for ax, (label, key) in zip(axes[0], scores.items(), strict=True):
        by_model(ax, models, [metrics["kl_to_sft"][m] for m in models], [metrics[key][m] for m in models])
        ax.set_xscale("symlog", linthresh=1)  # the base model sits tens of nats away; SFT and PPO within a few
        ax.set_xlabel("KL to SFT per response (log scale above 1)")
        ax.set_ylabel(label)
        ax.set_title(f"{label} against KL to SFT")
    paths.append(save(fig, out / "reward_vs_kl.png"))
    keys = [k for k in SAFETY_LABELS if metrics[k]["sft"] is not None]
    if keys:
        fig, ax = plt.subplots(figsize=(7, 4))
        bars(ax, [SAFETY_LABELS[k] for k in keys], {m: [metrics[k][m] for k in keys] for m in models})
        ax.set_ylim(0, 1)
        ax.set_title("Safety and truthfulness on the test split")
        paths.append(save(fig, out / "safety.png"))
    judged = plot_judges(metrics.get("judges") or {}, out)
    return paths + ([judged] if judged else [])


def plot_judges(judges: dict, out: Path) -> Path | None:
    """Each judge's win rate vs SFT per model, with its 95% interval as an error bar."""
    if not judges:
        return None
    plt = pyplot()
    models = [m for m in next(iter(judges.values()))["win_rate_vs_sft"] if m != "sft"]
    fig, ax = plt.subplots(figsize=(2 + 1.6 * len(judges) * max(len(models), 1) / 2, 4))
    width = 0.8 / max(len(models), 1)
    for i, m in enumerate(models):
        missing = {"value": float("nan"), "low": float("nan"), "high": float("nan")}  # a judge that did not see m
        rates = [j["win_rate_vs_sft"].get(m, missing) for j in judges.values()]
        x = [g + i * width for g in range(len(judges))]
        errors = [[r["value"] - r["low"] for r in rates], [r["high"] - r["value"] for r in rates]]
        ax.bar(x, [r["value"] for r in rates], width, yerr=errors, capsize=3, label=m)
    ax.set_xticks([g + width * (len(models) - 1) / 2 for g in range(len(judges))], [LABELS[j] for j in judges])
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_ylim(0, 1)
    ax.set_ylabel("win rate vs SFT (95% interval)")
    ax.set_title("Each judge's win rate against SFT")
    ax.legend()
    return save(fig, out / "judges.png")


def cell(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value).replace("|", "\\|").replace("\n", "<br>")


def table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


ROWS = (
    ("gold win rate vs SFT", "win_rate_vs_sft"),
    ("the same, every writer habit cut", "win_rate_vs_sft_without_habits"),
    ("the same, sign-off cut", "win_rate_vs_sft_without_sign_off"),
    ("the same, hedge cut", "win_rate_vs_sft_without_hedge"),
    ("the same, disclaimer cut", "win_rate_vs_sft_without_disclaimer"),
    ("the same, terse answers excused", "win_rate_vs_sft_without_terse"),
    ("the same, a list one short excused", "win_rate_vs_sft_without_list_short"),
    ("RM win rate vs SFT", "rm_win_rate_vs_sft"),
    ("gold score", "gold_score"),
    ("RM score", "rm_score"),
    ("answers that differ from SFT's", "changed_vs_sft"),
    ("hallucination rate (Closed QA)", "hallucination_rate"),
    ("harmful refusal rate", "harmful_refusal_rate"),
    ("false-premise correction rate", "false_premise_correction_rate"),
    ("needless refusal rate (the other prompts, lower is better)", "needless_refusal_rate"),
    ("corpus perplexity (alignment tax)", "corpus_perplexity"),
    ("TruthfulQA MC1", "truthfulqa_mc1"),
    ("TruthfulQA MC2", "truthfulqa_mc2"),
    ("toxicity of continuations", "toxicity"),
    ("KL to SFT", "kl_to_sft"),
)


def row_label(label: str, key: str, counted: dict | None) -> str:
    """A safety rate's label says how many prompts it counts ("hallucination rate (Closed QA, 8 prompts)")."""
    n = (counted or {}).get(key)
    if n is None:
        return label
    return f"{label[:-1]}, {n} prompts)" if label.endswith(")") else f"{label} ({n} prompts)"


def metrics_markdown(metrics: dict) -> str:
    models = list(metrics["gold_score"])
    counted = metrics.get("safety_prompts")
    rows = [[row_label(label, key, counted), *(metrics.get(key, {}).get(m) for m in models)] for label, key in ROWS]
    return table(["metric", *models], rows)


def rate_cell(rate: dict | None) -> str:
    return "n/a" if rate is None else f"{rate['value']:.3f} [{rate['low']:.3f}, {rate['high']:.3f}]"


def judges_markdown(metrics: dict) -> str | None:
    """One row per judge: win rates vs SFT with intervals, and how far the judge can be trusted."""
    table_ = metrics.get("judges") or {}
    if not table_:
        return None
    models = list(next(iter(table_.values()))["win_rate_vs_sft"])
    rows = []
    for judge, t in table_.items():
        agreement = t.get("agreement_with_gold")
        trust = [
            f"held-out accuracy {cell(t['held_out_accuracy'])}" if "held_out_accuracy" in t else "",
            f"agrees with gold on {rate_cell(agreement)} of {agreement['pairs']} PPO-vs-SFT pairs"
            if agreement and agreement["value"] is not None else "",
            ("orders the models as gold does" if t["orders_like_gold"] else f"orders them {' < '.join(t['order'])}")
            if "orders_like_gold" in t else "",
            f"{t['unparsed_replies']} of {t['replies']} replies unparsed (ties)" if "replies" in t else "",
        ]  # fmt: skip
        rates = [rate_cell(t["win_rate_vs_sft"].get(m)) for m in models]
        rows.append([LABELS[judge], *rates, "; ".join(x for x in trust if x)])
    text = (
        "## Judges\n\nWin rate against SFT with its 95% bootstrap interval. Gold is the truth where the data "
        "has a grader; the training RM is what PPO optimised, so its win rate shows what PPO learned to please, "
        "not that it got better.\n\n"
    )
    return text + table(["judge", *models, "how far to trust it"], rows)


def conversation(messages: list[dict]) -> str:
    # Raw text: `table` escapes each cell once (pipes, and newlines into <br>).
    return "\n".join(f"**{m['role']}:** {m['content']}" for m in messages)


def changes_markdown(metrics: dict, changes: list[dict]) -> str | None:
    """PPO against SFT answer by answer: the counts, then the largest losses and gains in gold."""
    counts = (metrics.get("outcomes_vs_sft") or {}).get("ppo")
    if not counts:
        return None
    text = (
        "## PPO against SFT, answer by answer\n\n"
        f"PPO's answer scores higher in gold than SFT's on {counts['better']} prompts and lower on "
        f"{counts['worse']}; on {counts['equal_gold']} it differs but scores the same, and on "
        f"{counts['same_text']} it is SFT's word for word."
    )
    if changes:
        rows = [
            [c["change"], c["category"], conversation(c["prompt"]),
             f"{c['answers']['sft']} ({c['gold']['sft']:.2f})", f"{c['answers']['ppo']} ({c['gold']['ppo']:.2f})"]
            for c in changes
        ]  # fmt: skip
        text += " The largest falls and rises (gold in brackets):\n\n" + table(
            ["PPO is", "category", "prompt", "SFT", "PPO"], rows
        )
    return text


PHRASING_ROWS = (
    ("gold win rate vs SFT", "win_rate_vs_sft"),
    ("the same, every writer habit cut", "win_rate_vs_sft_without_habits"),
    ("gold score", "gold_score"),
    ("hallucination rate (Closed QA)", "hallucination_rate"),
    ("harmful refusal rate", "harmful_refusal_rate"),
    ("false-premise correction rate", "false_premise_correction_rate"),
    ("needless refusal rate", "needless_refusal_rate"),
)


def phrasing_markdown(metrics: dict) -> str | None:
    """Each model on the test split (phrasings seen in training) beside the held-out phrasings."""
    held = metrics.get("held_out_phrasings")
    if not held:
        return None
    models = list(metrics["gold_score"])
    header = ["metric", *(f"{m}: {where}" for m in models for where in ("seen", "held out"))]
    rows = [
        [label, *(v for m in models for v in (metrics[key].get(m), held[key].get(m)))] for label, key in PHRASING_ROWS
    ]
    counts = ", ".join(f"{n} {k.split('_rate')[0].replace('_', ' ')}" for k, n in held["safety_prompts"].items())
    return (
        "## Seen and held-out phrasings\n\n"
        f"Seen: the test split's {metrics['prompts']} prompts, new prompts worded as the training files word them. "
        f"Held out: {held['prompts']} prompts (of them {counts}) worded only in each category's phrasing family "
        "that no demonstration, comparison or PPO prompt uses (`data/heldout.jsonl`).\n\n" + table(header, rows)
    )


def side_by_side_markdown(title: str, shown: list[dict], models: list[str]) -> str:
    rows = [[s["group"], conversation(s["prompt"]), *(s["answers"][m] for m in models)] for s in shown]
    return f"## {title}\n\n" + table(["kind", "prompt", *models], rows)


def write_report(
    metrics: dict, shown: list[dict], changes: list[dict], path: Path, shown_held_out: list[dict] | None = None
) -> Path:
    models = list(metrics["gold_score"])
    decision = "promoted to `champion`" if metrics["promoted"] else "not promoted (stays `candidate`)"
    parts = [
        "# Evaluation",
        f"{metrics['prompts']} test prompts, greedy answers. Win rates count ties as half.",
        "## Models\n\n" + metrics_markdown(metrics),
        f"## Promotion\n\nPPO against **{metrics['reference']}**: {decision}.\n\n"
        + "\n".join(f"- {r}" for r in metrics["promotion_reasons"]),
    ]
    phrasing = phrasing_markdown(metrics)
    if phrasing:
        parts.append(phrasing)
    judged = judges_markdown(metrics)
    if judged:
        parts.append(judged)
    answer_by_answer = changes_markdown(metrics, changes)
    if answer_by_answer:
        parts.append(answer_by_answer)
    per_category = metrics["win_rate_by_category"]
    if per_category.get("ppo"):
        categories = sorted(per_category["ppo"])
        compared = [m for m in models if m != "sft" and per_category.get(m)]
        intervals = ((metrics.get("judges") or {}).get("gold") or {}).get("win_rate_by_category", {})
        rows = [
            [c, *(rate_cell(intervals[m][c]) if m in intervals else per_category[m][c] for m in compared)]
            for c in categories
        ]
        parts.append("## Gold win rate vs SFT by category (95% interval)\n\n" + table(["category", *compared], rows))
    if shown_held_out:
        parts.append(side_by_side_markdown("Side by side, held-out phrasings", shown_held_out, models))
    if shown:
        parts.append(side_by_side_markdown("Side by side", shown, models))
    parts.append("Plots: `judges.png`, `win_rate_by_category.png`, `reward_vs_kl.png`, `safety.png` beside this file.")
    with atomic_path(path) as tmp:
        tmp.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    return path
