"""The PPO curve plot: its smoothing, and a run without a gold grader (real data)."""

from __future__ import annotations

from pathlib import Path

from components.eval.report import moving_average, plot_ppo_curve


def test_moving_average_is_a_trailing_mean_that_starts_with_fewer_values() -> None:
    assert moving_average([1.0, 2.0, 3.0, 4.0], 2) == [1.0, 1.5, 2.5, 3.5]
    assert moving_average([5.0, 1.0], 1) == [5.0, 1.0]
    assert moving_average([], 3) == []


def history(n: int, gold: bool) -> list[dict]:
    return [{"episodes": 64 * (i + 1), "kl": 0.1 * i, "reward": 0.05 * i,
             "gold_score": 0.6 - 0.01 * i if gold else None} for i in range(n)]  # fmt: skip


def test_the_ppo_curve_is_drawn_with_and_without_gold_scores(tmp_path: Path) -> None:
    for gold in (True, False):
        path = plot_ppo_curve(history(12, gold), tmp_path / f"gold-{gold}" / "curve.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
        assert [f.name for f in path.parent.iterdir()] == ["curve.png"]  # no temporary left behind
