"""Human labels: ranks from the page, atomic appends, export/import, the ranking page in a real browser."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from components.data.io import read_jsonl
from components.errors import DataError
from components.loop.label_server import create_app, ranks_from
from components.loop.labeling import (
    LABELS,
    append_label,
    comparisons,
    export_pending,
    import_labels,
    labels_pending,
    write_tasks,
)
from components.ports import free_port

CHROMIUM = Path("/usr/bin/chromium")


def tasks_folder(path: Path, n: int = 2) -> Path:
    ask = [[{"role": "user", "content": f"What does person {i} like?"}] for i in range(n)]
    prompts = [{"id": f"prm-{i}", "user_id": f"user-{i}", "category": "Open QA", "messages": ask[i]} for i in range(n)]
    answers = [[f"Answer {c} to {i}." for c in "ABCD"] for i in range(n)]
    path.mkdir(parents=True, exist_ok=True)
    write_tasks(path, prompts, answers, 2)
    return path


def test_page_order_and_ties_become_ranks() -> None:
    assert ranks_from([2, 0, 3, 1], [False, False, False, False], 4) == [2, 4, 1, 3]
    assert ranks_from([2, 0, 3, 1], [False, True, False, True], 4) == [1, 3, 1, 3]
    with pytest.raises(ValueError, match="each of the 4 answers once"):
        ranks_from([0, 0, 1, 2], [], 4)


def test_appends_from_many_threads_leave_whole_lines(tmp_path: Path) -> None:
    threads = [threading.Thread(target=lambda i=i: [append_label(tmp_path, {"task_id": f"t{i}-{j}", "labeler": "x",
                                                                         "skipped": True, "pad": "y" * 3000})
                                                     for j in range(20)]) for i in range(8)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = (tmp_path / LABELS).read_text().splitlines()
    assert len(lines) == 160 and all(json.loads(line)["pad"] == "y" * 3000 for line in lines)


def test_export_then_import_checks_every_row_before_keeping_any(tmp_path: Path) -> None:
    sub = tasks_folder(tmp_path / "round", n=3)
    assert export_pending(sub, tmp_path / "pending.jsonl") == 3
    rows = [{"task_id": "r02-000000", "ranks": [1, 2, 3, 4]}, {"task_id": "r02-000001", "ranks": [1, 1, 1, 1]}]
    (tmp_path / "done.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(DataError, match=r"done.jsonl: line 2, id r02-000001: every answer tied"):
        import_labels(sub, tmp_path / "done.jsonl", "team-b")
    assert not (sub / LABELS).exists()  # nothing half-imported
    rows[1]["ranks"] = [2, 1, 2, 4]
    (tmp_path / "done.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert import_labels(sub, tmp_path / "done.jsonl", "team-b") == 2
    assert labels_pending(sub) == 1 and export_pending(sub, tmp_path / "pending.jsonl") == 1
    records = comparisons(sub)
    assert [r["ranks"] for r in records] == [[1, 2, 3, 4], [2, 1, 2, 4]]
    assert records[0]["labeler"] == "team-b" and records[0]["round"] == 2 and records[0]["time"]


@pytest.fixture()
def label_server(tmp_path: Path):
    """The ranking page's app under uvicorn on a free loopback port, with a token."""
    import uvicorn

    sub = tasks_folder(tmp_path / "round")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(sub, token="s3cret"), host="127.0.0.1", port=port,
                                           log_level="warning"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield sub, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_the_api_refuses_requests_without_the_token(label_server) -> None:
    _, url = label_server
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{url}/api/next?labeler=alice")
    assert refused.value.code == 401
    with urllib.request.urlopen(f"{url}/api/next?labeler=alice&token=s3cret") as ok:
        assert json.loads(ok.read())["progress"] == {"done": 0, "total": 2, "left_for_you": 2}


@pytest.mark.skipif(not CHROMIUM.exists() or not shutil.which("chromium"), reason="Debian chromium not installed")
def test_a_labeler_ranks_answers_in_a_real_browser(label_server, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from scripts.screenshots import CHROMIUM_ARGS

    sub, url = label_server
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        page.goto(f"{url}/?token=s3cret&labeler=alice")
        page.get_by_text("What does person 0 like?").wait_for()
        assert "2 of 2 tasks left" in page.locator("#progress").inner_text()
        shown = [t.strip() for t in page.locator("li.answer .text").all_inner_texts()]
        assert sorted(shown) == [f"Answer {c} to 0." for c in "ABCD"]
        # Keyboard: move the last answer to the top, tie the (new) second with the first, flag the third.
        page.keyboard.press("ArrowDown")
        page.keyboard.press("ArrowDown")
        page.keyboard.press("ArrowDown")
        for _ in range(3):
            page.keyboard.press("Shift+ArrowUp")
        page.keyboard.press("ArrowDown")
        page.keyboard.press("t")
        page.keyboard.press("ArrowDown")
        page.keyboard.press("h")
        # Drag: the fourth answer above the third.
        page.locator("li.answer").nth(3).drag_to(page.locator("li.answer").nth(2))
        final = [t.strip() for t in page.locator("li.answer .text").all_inner_texts()]
        # INSTRUCTFLOW_SCREENSHOTS=docs/images pytest -k browser refreshes the README's picture of the page.
        shots = Path(os.environ.get("INSTRUCTFLOW_SCREENSHOTS", tmp_path))
        page.screenshot(path=str(shots / "label-page.png"), full_page=True)
        page.keyboard.press("Enter")
        page.get_by_text("What does person 1 like?").wait_for()
        page.keyboard.press("s")  # skip the second task
        page.get_by_text("No tasks left for you").wait_for()
        browser.close()
    labels = read_jsonl(sub / LABELS)
    assert [label["task_id"] for label in labels] == ["r02-000000", "r02-000001"]
    first, skip = labels
    assert skip["skipped"] and skip["labeler"] == "alice"
    expected_order = [shown[3], shown[0], shown[1], shown[2]]  # after the keyboard moves
    assert final == [expected_order[0], expected_order[1], expected_order[3], expected_order[2]]  # after the drag
    index = {f"Answer {c} to 0.": i for i, c in enumerate("ABCD")}
    ranks = [0] * 4
    for position, text in enumerate(final):
        ranks[index[text]] = {0: 1, 1: 1, 2: 3, 3: 4}[position]
    assert first["ranks"] == ranks and first["labeler"] == "alice" and first["time"]
    flagged = index[expected_order[2]]  # flagged harmful at position 3 before the drag moved it down
    assert first["flags"] == {str(flagged): ["harmful"]}
    assert labels_pending(sub) == 1  # a skip leaves the task for someone else
