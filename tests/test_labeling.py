"""Human labels: ranks from the page, atomic appends, export/import, the ranking page in a real browser."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def served(app) -> Iterator[str]:
    """APP under uvicorn on a free loopback port, in a thread; yields its URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture()
def label_server(tmp_path: Path):
    """The ranking page's app on a free loopback port, with a token."""
    sub = tasks_folder(tmp_path / "round")
    with served(create_app(sub, token="s3cret")) as url:
        yield sub, url


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
        # INSTRUCTFLOW_SCREENSHOTS=DIR keeps a picture of the page (the README's is scripts/screenshots.py's).
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


def call(url: str, path: str, body: dict | None = None, host: str | None = None) -> tuple[int, dict]:
    """One request to the page's API: (status, JSON body)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json"})
    if host is not None:
        request.add_header("Host", host)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        text = e.read()
        return e.code, json.loads(text) if text.startswith(b"{") else {}


def ranking(task: dict, labeler: str) -> dict:
    order = [a["index"] for a in task["answers"]]
    return {"task_id": task["task_id"], "labeler": labeler, "order": order, "tied_with_previous": []}


def test_eight_concurrent_labelers_get_different_tasks_and_each_task_is_ranked_once(tmp_path: Path) -> None:
    sub = tasks_folder(tmp_path / "round", n=40)
    refused: list[int] = []

    def label(url: str, who: str) -> None:
        for _ in range(40):  # bounded: at most 40 tasks each
            _, got = call(url, f"/api/next?labeler={who}")
            if got["task"] is None:
                return
            status, _ = call(url, "/api/submit", ranking(got["task"], who))
            if status != 200:
                refused.append(status)

    with served(create_app(sub)) as url:
        threads = [threading.Thread(target=label, args=(url, f"labeler-{i}")) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    labels = read_jsonl(sub / LABELS)  # every line whole: it parses
    ranked = [label["task_id"] for label in labels]
    assert sorted(ranked) == sorted(set(ranked)) and len(ranked) == 40, "each task ranked exactly once"
    assert refused == [], "the leases handed each task to one labeler: no ranking was refused"
    assert len({label["labeler"] for label in labels}) > 1


def test_tabs_get_different_tasks_a_second_ranking_is_refused_and_flags_are_checked(tmp_path: Path) -> None:
    sub = tasks_folder(tmp_path / "round", n=3)
    with served(create_app(sub)) as url:
        first = call(url, "/api/next?labeler=alice")[1]["task"]
        second = call(url, "/api/next?labeler=alice")[1]["task"]  # another tab of the same labeler
        assert first["task_id"] != second["task_id"]
        bad_flags = [{"9": ["harmful"]}, {"0": ["evil"]}, {"0": ["harmful", "harmful"]},
                     {str(i): ["harmful"] for i in range(200_000)}, {"0": ["x" * 5_000_000]}]  # fmt: skip
        for flags in bad_flags:
            status, _ = call(url, "/api/submit", {**ranking(first, "alice"), "flags": flags})
            assert status == 422, str(flags)[:80]
        ok = call(url, "/api/submit", {**ranking(first, "alice"), "flags": {"1": ["untruthful"]}})
        assert ok[0] == 200
        again = call(url, "/api/submit", ranking(first, "bob"))
        assert again[0] == 409 and "already ranked" in again[1]["detail"]
    assert [label["task_id"] for label in read_jsonl(sub / LABELS)] == [first["task_id"]]


def test_a_token_less_page_answers_only_loopback_hosts_and_serves_no_schema(tmp_path: Path) -> None:
    sub = tasks_folder(tmp_path / "round")
    with served(create_app(sub)) as url:
        assert call(url, "/api/next?labeler=a")[0] == 200
        assert call(url, "/api/next?labeler=a", host="attacker.example")[0] == 400  # a DNS-rebinding page's Host
        assert call(url, "/api/submit", {"task_id": "r02-000000", "labeler": "a"}, host="attacker.example")[0] == 400
        assert call(url, "/openapi.json")[0] == 404
    with served(create_app(sub, token="s3cret")) as url:
        assert call(url, "/openapi.json")[0] in (401, 404)
        assert call(url, "/docs")[0] in (401, 404)


def test_an_import_may_not_rank_a_task_again_nor_flag_what_is_not_there(tmp_path: Path) -> None:
    sub = tasks_folder(tmp_path / "round")
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"task_id": "r02-000000", "ranks": [1, 2, 3, 4]}) + "\n")
    assert import_labels(sub, rows, "ann") == 1
    with pytest.raises(DataError, match=r"rows.jsonl: line 1, id r02-000000: already ranked"):
        import_labels(sub, rows, "bob")
    rows.write_text(json.dumps({"task_id": "r02-000001", "ranks": [1, 2, 3, 4], "flags": {"7": ["harmful"]}}) + "\n")
    with pytest.raises(DataError, match=r"line 1, id r02-000001: flags name answer '7'"):
        import_labels(sub, rows, "bob")
    assert labels_pending(sub) == 1
