"""`instructflow label serve`: a small web page on which people rank a round's answers.

FastAPI serves one page and a JSON API over the round's
`tasks.jsonl` and `labels.jsonl` (components/loop/labeling.py). A labeler sees one task at a time:
the whole conversation and its answers in a random order. They order the answers best to worst
(drag, or the keyboard), tie neighbours, flag answers as harmful or untruthful, submit or skip.

Each task served is leased to the tab that asked for it for `lease_seconds`, so concurrent labelers
(and one labeler's several tabs) get different tasks; a task ranked by anyone is done, and a second
ranking of it is refused. Bound to loopback without a token, requests must name a loopback host
(a page on another site that rebinds its DNS name to 127.0.0.1 cannot post labels); bound to
anything else, every route needs the token.
"""

from __future__ import annotations

import hmac
import random
import threading
import time
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, Header, HTTPException, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field
from starlette.middleware.trustedhost import TrustedHostMiddleware

from components.data.io import read_jsonl
from components.errors import DataError
from components.loop.labeling import TASKS, append_label, done_tasks, label_record, read_labels

LOOPBACK = ("127.0.0.1", "localhost", "::1")

PAGE = Path(__file__).with_name("label_page.html")


class Submission(BaseModel):
    task_id: str = Field(max_length=100)
    labeler: str = Field(min_length=1, max_length=100)
    order: list[int] = Field(default_factory=list, max_length=100, description="answer indices, best first")
    tied_with_previous: list[bool] = Field(default_factory=list, max_length=100, description="per position in ORDER")
    # Bounded here; checked against the task's answers by label_record (as `label import` is).
    flags: dict[str, list[str]] = Field(default_factory=dict, max_length=100, description="answer index -> flags")
    skipped: bool = False


class Leases:
    """Which task each open tab holds: a task is handed to one tab until it is answered or its lease ends."""

    def __init__(self, seconds: float):
        self.seconds, self.held = seconds, {}  # task_id -> (labeler, expiry)

    def claim(self, candidates: list[str], labeler: str) -> str | None:
        """The first candidate nobody holds (else the labeler's own oldest), now leased to LABELER."""
        now = time.monotonic()
        self.held = {t: (who, end) for t, (who, end) in self.held.items() if end > now}
        free = [t for t in candidates if t not in self.held]
        own = sorted((end, t) for t, (who, end) in self.held.items() if who == labeler and t in set(candidates))
        chosen = free[0] if free else (own[0][1] if own else None)
        if chosen is not None:
            self.held[chosen] = (labeler, now + self.seconds)
        return chosen

    def release(self, task_id: str) -> None:
        self.held.pop(task_id, None)


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


def create_app(
    sub: Path, token: str | None = None, seed: int = 0, lease_seconds: float = 600, hosts: tuple[str, ...] = ()
) -> FastAPI:
    """The page and its API over SUB's tasks. HOSTS: the Host names a token-less server accepts
    (loopback's always); with a token, any (the token is what a request must know)."""
    # No /docs, /redoc or /openapi.json: every route there is is behind the token.
    app = FastAPI(title="instructflow labeling", docs_url=None, redoc_url=None, openapi_url=None)
    if token is None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=[*LOOPBACK, "[::1]", *hosts])
    tasks = {t["task_id"]: t for t in read_jsonl(sub / TASKS)}
    leases, lock = Leases(lease_seconds), threading.Lock()  # one lock: a check and its write happen together

    def authorise(given: str | None) -> None:
        if token is not None and not (given and hmac.compare_digest(given, token)):
            raise HTTPException(401, "a valid token is required (?token=... or X-Token header)")

    @app.get("/", response_class=HTMLResponse)
    def page(token_q: str | None = Query(None, alias="token")) -> str:
        authorise(token_q)
        return PAGE.read_text(encoding="utf-8")

    @app.get("/api/next")
    def next_task(labeler: Annotated[str, Query(min_length=1, max_length=100)],
                  token_q: str | None = Query(None, alias="token"),
                  x_token: str | None = Header(None)) -> dict:  # fmt: skip
        authorise(token_q or x_token)
        with lock:
            labels = read_labels(sub)  # once per request: the file is the only state, so a restart loses nothing
            done = done_tasks(labels)
            seen = {label["task_id"] for label in labels if label["labeler"] == labeler}
            left = [task_id for task_id in tasks if task_id not in done and task_id not in seen]
            chosen = leases.claim(left, labeler)
        progress = {"done": len(done), "total": len(tasks), "left_for_you": len(left)}
        if chosen is None:
            return {"task": None, "progress": progress}
        task = tasks[chosen]
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
        with lock:
            if s.task_id in done_tasks(read_labels(sub)):
                raise HTTPException(409, f"task {s.task_id} is already ranked; its first ranking stands")
            if s.skipped:
                append_label(sub, {"task_id": s.task_id, "labeler": s.labeler, "skipped": True})
                leases.release(s.task_id)
                return {"ok": True}
            try:
                ranks = ranks_from(s.order, s.tied_with_previous, len(task["answers"]))
                append_label(sub, label_record(task, ranks, s.labeler, s.flags))
            except (ValueError, DataError) as e:
                raise HTTPException(422, str(e)) from None
            leases.release(s.task_id)
        return {"ok": True, "ranks": ranks}

    return app


def serve(sub: Path, host: str, port: int, token: str | None) -> None:
    import uvicorn

    if host not in LOOPBACK and not token:
        raise ValueError(f"--host {host} is reachable from other machines: pass --token")
    uvicorn.run(create_app(sub, token), host=host, port=port, log_level="info")
