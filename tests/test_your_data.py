"""A new user's road, end to end: real public samples, a local model, `instructflow run`.

The samples in ../shared/datasets are imported as the README's "Your data and your model"
says (Alpaca as demonstrations and as prompts, Self-Instruct prompts, HH-RLHF comparisons, a
text corpus), `model.base` names a local Hugging Face folder the test builds, and the run
must end in a promotion decision taken by a judge PPO never optimised, with its reasons.
There is no gold grader on this data.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.models.model import tiny_lm, train_tokenizer
from components.params import load_params

from .conftest import DEFAULTS, ROOT, TINY, tool_env

pytestmark = pytest.mark.slow
SAMPLES = ROOT.parent / "shared" / "datasets"


def instructflow(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "components.cli", *args], cwd=cwd, env=tool_env(),
                            capture_output=True, text=True, timeout=900)  # fmt: skip
    assert result.returncode == 0, f"instructflow {' '.join(args)}:\n{(result.stdout + result.stderr)[-4000:]}"
    return result


def local_model(folder: Path) -> Path:
    """A user's own model: a local Hugging Face folder (safetensors, a tokenizer without a chat template)."""
    params = load_params(ROOT / "params.yaml", profile=TINY)
    text = [line for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines() if line.strip()]
    tok = train_tokenizer(text * 3, params.model.vocab_size)
    tok.chat_template = None
    tiny_lm(tok, params.model).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def user_project(path: Path, corpus: bool) -> Path:
    """A project folder as the README's walk-through leaves it: params.yaml naming the model, data imported."""
    path.mkdir(parents=True)
    tree = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    tree["model"]["base"] = str(local_model(path / "my-model"))
    (path / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False), encoding="utf-8")
    alpaca = str(SAMPLES / "alpaca-5000.json")
    imports = [
        ["alpaca", alpaca, "--kind", "demonstrations"],
        ["alpaca", alpaca, "--kind", "prompts"],  # the same instructions: they must land in one split
        ["alpaca", str(SAMPLES / "self-instruct-seed-tasks.jsonl"), "--kind", "prompts", "--append"],
        ["hh-rlhf", str(SAMPLES / "hh-rlhf-harmless-base-test.jsonl.gz"), "--kind", "comparisons"],
    ]
    if corpus:
        docs = path / "docs"
        shutil.copytree(ROOT / "docs", docs)
        shutil.copy(ROOT / "README.md", docs / "README.md")
        imports.append(["text", str(docs), "--kind", "corpus"])
    for args in imports:
        instructflow(["data", "import", *args], path)
    return path


@pytest.mark.usefixtures("prefect_server")  # flows run here: the session's server
def test_real_samples_and_a_local_model_end_in_a_decision_by_an_independent_judge(tmp_path: Path) -> None:
    """Through `instructflow run`: the Prefect flow, every stage a subprocess, as a user runs it."""
    project = user_project(tmp_path / "project", corpus=True)
    out = instructflow(["run", "--profile", str(TINY)], project).stdout
    assert "Policy:" in out and "promoted" in out
    check_the_decision(project, corpus=True)


def check_the_decision(project: Path, corpus: bool) -> None:
    """The splits, the judges and the decision with its reasons (also without a corpus: its own module)."""
    metrics = project / "artifacts" / "metrics"
    evaluation = json.loads((metrics / "evaluate.json").read_text())
    register = json.loads((metrics / "register.json").read_text())
    prepared = json.loads((metrics / "prepare.json").read_text())
    for name, counts in prepared["records"].items():  # every split a file needs is filled
        assert all(counts[s] > 0 for s in ("train", "valid", "test")), (name, counts)
    assert prepared["records"]["comparisons.jsonl"]["judge"] > 0
    assert ("notes" in prepared) is not corpus
    judges = evaluation["judges"]
    assert "gold" not in judges and {"judge_rm", "training_rm"} <= set(judges)  # no gold on real data
    assert judges["judge_rm"]["held_out_accuracy"] is not None
    first = evaluation["promotion_reasons"][0]
    accuracy = judges["judge_rm"]["held_out_accuracy"]
    if accuracy >= DEFAULTS.promotion.min_judge_accuracy:  # the judge RM decides, on its interval
        assert first.split(": ", 1)[1].startswith("judge-RM win rate vs sft"), first
        assert "[" in first and "95% interval lower bound" in first
    else:  # a judge at chance is no evidence: the decision says so and names it
        assert not evaluation["promoted"]
        assert (
            first == f"FAIL: not promoted: no independent judge; judge-RM's held-out accuracy {accuracy:.3f} is below "
            f"promotion.min_judge_accuracy {DEFAULTS.promotion.min_judge_accuracy} (measured: judge-RM, training-RM)"
        )
    assert all("not measured" in r for r in evaluation["promotion_reasons"][1:])  # no grader: no safety evidence
    assert register["promoted"] == evaluation["promoted"]
    assert register["promotion_reasons"] == evaluation["promotion_reasons"]
    assert (evaluation["corpus_perplexity"]["ppo"] is None) is not corpus
    report = (project / "artifacts" / "evaluation" / "report.md").read_text()
    assert "## Judges" in report and "| judge-RM |" in report
