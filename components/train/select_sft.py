"""The `select_sft` stage: the paper's rule for which SFT checkpoint PPO starts from.

Each epoch's checkpoint answers the same validation prompts greedily; the reward model
scores the answers; the checkpoint with the highest mean reward wins (not the lowest
validation loss). Only the last `select_sft.last_epochs` checkpoints compete: the paper
compares finished SFT runs, and an RM that ranks near chance on a policy's own answers
would otherwise pick an undertrained early epoch by noise. The gold score of each
checkpoint is logged beside it for comparison, never used for the choice.
"""

from __future__ import annotations

from pathlib import Path

from components.data.io import read_jsonl
from components.eval.gold import gold_scores, load_gold
from components.eval.metrics import mean, score
from components.models.generation import answer
from components.models.model import context_length, inference_device, load_causal_lm, load_tokenizer
from components.models.reward import load_reward_model
from components.params import Params
from components.tracking import Tracker


def run_select_sft(params: Params, data: Path, splits: Path, sft: Path, rm: Path, tracker: Tracker) -> dict:
    p = params.select_sft
    prompts = read_jsonl(splits / "valid" / "prompts.jsonl")[: p.prompts]
    conversations = [r["messages"] for r in prompts]
    device = inference_device()
    reward_model, rm_tok = load_reward_model(rm, device=device)
    context = context_length(reward_model.model.config, params.model.context)
    gold = load_gold(data)
    processes = params.resources.inference_processes
    epochs = sorted(d for d in sft.iterdir() if d.is_dir() and d.name.startswith("epoch-"))
    if not epochs:
        raise FileNotFoundError(f"{sft}: no epoch-NN checkpoints")
    epochs = epochs[-p.last_epochs :] if p.last_epochs else epochs
    scores: dict[str, dict[str, float | None]] = {}
    for step, folder in enumerate(epochs, start=1):
        model, tok = load_causal_lm(folder, device=device).eval(), load_tokenizer(folder)
        answers = answer(model, tok, conversations, p.max_new_tokens, processes=processes)
        reward = mean(score(reward_model, rm_tok, conversations, answers, context, processes=processes))
        scores[folder.name] = {"rm_score": reward, "gold_score": mean(gold_scores(gold, prompts, answers))}
        tracker.log({"rm_score": reward or 0.0, "gold_score": scores[folder.name]["gold_score"] or 0.0}, step=step)
    chosen = max(scores, key=lambda name: scores[name]["rm_score"])
    return {"scores": scores, "selected": chosen, "selected_path": str(sft / chosen), "prompts": len(prompts)}
