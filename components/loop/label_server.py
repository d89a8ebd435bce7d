"""`instructflow label serve`: a small web page on which people rank a round's answers.

FastAPI serves one page and a JSON API over the round's
`tasks.jsonl` and `labels.jsonl` (components/loop/labeling.py). A labeler sees one task at a time:
the whole conversation and its answers in a random order. They order the answers best to worst
(drag, or the keyboard), tie neighbours, flag answers as harmful or untruthful, submit or skip.
The same task is never served twice to one labeler; a task ranked by anyone is done.
Bound to anything but loopback, every request needs the token.
"""

from __future__ import annotations

import hmac
import random
from pathlib import Path

from fastapi import FastAPI, Header, HTTPException, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from components.data.io import read_jsonl
from components.errors import DataError
from components.loop.labeling import TASKS, append_label, done_tasks, label_record, read_labels

PAGE = Path(__file__).with_name("label_page.html")


class Submission(BaseModel):
    task_id: str
    labeler: str = Field(min_length=1, max_length=100)
    order: list[int] = Field(default_factory=list, description="answer indices (task order), best first")
    tied_with_previous: list[bool] = Field(default_factory=list, description="per position in ORDER")
    flags: dict[str, list[str]] = Field(default_factory=dict, description="answer index -> harmful/untruthful")
    skipped: bool = False


def ranks_from(order: list[int], tied: list[bool], k: int) -> list[int]:
    """Positions best-to-worst (with ties to the previous position) -> rank per answer, 1 = best."""
    if sorted(order) != list(range(k)):
        raise ValueError(f"order must list each of the {k} answers once, got {order}")
    ranks, rank = [0] * k, 0
    for position, answer in enumerate(order):
        if not (position > 0 and position < len(tied) and tied[position]):
            rank = position + 1
        ranks[answer] = rank
    return ranks


def create_app(sub: Path, token: str | None = None, seed: int = 0) -> FastAPI:
    app = FastAPI(title="instructflow labeling", docs_url=None, redoc_url=None)
    tasks = {t["task_id"]: t for t in read_jsonl(sub / TASKS)}

    def authorise(given: str | None) -> None:
        if token is not None and not (given and hmac.compare_digest(given, token)):
            raise HTTPException(401, "a valid token is required (?token=... or X-Token header)")

    @app.get("/", response_class=HTMLResponse)
    def page(token_q: str | None = Query(None, alias="token")) -> str:
        authorise(token_q)
        return PAGE.read_text(encoding="utf-8")

    @app.get("/api/next")
    def next_task(labeler: str, token_q: str | None = Query(None, alias="token"),
                  x_token: str | None = Header(None)) -> dict:  # fmt: skip
        authorise(token_q or x_token)
        labels = read_labels(sub)  # once per request: the file is the only state, so a restart loses nothing
        done = done_tasks(labels)
        seen = {label["task_id"] for label in labels if label["labeler"] == labeler}
        left = [t for task_id, t in tasks.items() if task_id not in done and task_id not in seen]
        progress = {"done": len(done), "total": len(tasks), "left_for_you": len(left)}
        if not left:
            return {"task": None, "progress": progress}
        task = left[0]
        shown = list(range(len(task["answers"])))
        random.Random(f"{seed}-{labeler}-{task['task_id']}").shuffle(shown)  # the order differs per labeler
        answers = [{"index": i, "text": task["answers"][i]} for i in shown]
        view = {"task_id": task["task_id"], "round": task["round"], "category": task["category"],
                "messages": task["messages"], "answers": answers}  # fmt: skip
        return {"task": view, "progress": progress}

    @app.post("/api/submit")
    def submit(s: Submission, token_q: str | None = Query(None, alias="token"),
               x_token: str | None = Header(None)) -> dict:  # fmt: skip
        authorise(token_q or x_token)
        task = tasks.get(s.task_id)
        if task is None:
            raise HTTPException(404, f"unknown task {s.task_id}")
        if s.skipped:
            append_label(sub, {"task_id": s.task_id, "labeler": s.labeler, "skipped": True})
            return {"ok": True}
        try:
            ranks = ranks_from(s.order, s.tied_with_previous, len(task["answers"]))
            append_label(sub, label_record(task, ranks, s.labeler, s.flags))
        except (ValueError, DataError) as e:
            raise HTTPException(422, str(e)) from None
        return {"ok": True, "ranks": ranks}

    return app


def serve(sub: Path, host: str, port: int, token: str | None) -> None:
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        raise ValueError(f"--host {host} is reachable from other machines: pass --token")
    uvicorn.run(create_app(sub, token), host=host, port=port, log_level="info")
