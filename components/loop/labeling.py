"""Human labels for a round: tasks, the labels file, and the rule that turns labels into comparisons.

A round with `pipeline.labels: human` writes `tasks.jsonl` (one prompt, the whole conversation,
and its K answers) in its folder and waits. People rank the answers on the page of
`instructflow label serve` (components/loop/label_server.py) or in another tool (`instructflow label
export` / `import`). Every submission is one line appended to `labels.jsonl` with the labeler's
id and the time, so a server stopped mid-session loses nothing. A task is done when someone
ranked it; a skip only hides the task from that labeler.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from components.data.io import dumps, iter_jsonl, read_jsonl, write_jsonl
from components.errors import DataError, StageError

TASKS, LABELS = "tasks.jsonl", "labels.jsonl"
FLAGS = ("harmful", "untruthful")  # what a labeler may say of one answer besides its rank
_append_lock = threading.Lock()


class LabelsPending(StageError):
    """The round waits for people to rank its answers (a stage error: the user must act)."""


def write_tasks(sub: Path, prompts: list[dict], answers: list[list[str]], r: int) -> list[dict]:
    tasks = [
        {
            "task_id": f"r{r:02d}-{i:06d}",
            "round": r,
            "prompt_id": p["id"],
            "user_id": p["user_id"],
            "category": p["category"],
            "messages": p["messages"],
            "answers": a,
        }  # fmt: skip
        for i, (p, a) in enumerate(zip(prompts, answers, strict=True))
    ]
    write_jsonl(sub / TASKS, tasks)
    return tasks


def read_labels(sub: Path) -> list[dict]:
    path = sub / LABELS
    return [value for _, value in iter_jsonl(path)] if path.exists() else []


def done_tasks(labels: list[dict]) -> set[str]:
    return {label["task_id"] for label in labels if not label.get("skipped")}


def labels_pending(sub: Path) -> int:
    """Tasks of the round nobody has ranked yet (0 when the round has no tasks)."""
    tasks = sub / TASKS
    if not tasks.exists():
        return 0
    return len({t["task_id"] for t in read_jsonl(tasks)} - done_tasks(read_labels(sub)))


def append_label(sub: Path, label: dict) -> None:
    """One submission as one line, written with a single append and flushed to disk.

    A line is written whole or not at all (one write() of an O_APPEND file), so a crash or a stop
    never leaves a half line that would poison the file.
    """
    line = (dumps(label) + "\n").encode("utf-8")
    with _append_lock:
        fd = os.open(sub / LABELS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)


def check_ranks(task: dict, ranks: list[int], where: str) -> None:
    k = len(task["answers"])
    if len(ranks) != k or any(not isinstance(x, int) or not 1 <= x <= k for x in ranks):
        raise DataError(where, None, f"ranks {ranks} must give each of the {k} answers a rank in 1..{k}",
                        task["task_id"])  # fmt: skip
    if len(set(ranks)) < 2 and not task.get("ties_allowed"):  # an evaluation pair may tie; a round's may not
        raise DataError(where, None, "every answer tied: nothing to learn from this task", task["task_id"])


def check_flags(task: dict, flags: object, where: str) -> dict[str, list[str]]:
    """FLAGS as {answer index: [flag, ...]} over the task's answers, each flag one of FLAGS, once."""
    k, flags = len(task["answers"]), flags or {}
    if not isinstance(flags, dict):
        raise DataError(where, None, f"flags must map answer indices to lists of {FLAGS}", task["task_id"])
    for index, said in flags.items():
        if not (isinstance(index, str) and index.isdigit() and int(index) < k):
            raise DataError(where, None, f"flags name answer {index!r}: the task has answers 0..{k - 1}",
                            task["task_id"])  # fmt: skip
        if not isinstance(said, list) or len(set(said)) != len(said) or not set(said) <= set(FLAGS):
            raise DataError(where, None, f"flags of answer {index}: a list of distinct {FLAGS}, got {said!r}",
                            task["task_id"])  # fmt: skip
    return flags


def label_record(task: dict, ranks: list[int], labeler: str, flags: dict | None = None) -> dict:
    check_ranks(task, ranks, "label")
    return {"task_id": task["task_id"], "labeler": labeler, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "ranks": ranks, "flags": check_flags(task, flags, "label")}  # fmt: skip


def comparisons(sub: Path) -> list[dict]:
    """The round's labelled tasks as native comparisons (the first ranking of each task counts)."""
    tasks = {t["task_id"]: t for t in read_jsonl(sub / TASKS)}
    records, seen = [], set()
    for label in read_labels(sub):
        if label.get("skipped") or label["task_id"] in seen or label["task_id"] not in tasks:
            continue
        seen.add(label["task_id"])
        t = tasks[label["task_id"]]
        records.append({"id": f"cmp-{t['task_id']}", "user_id": t["user_id"], "category": t["category"],
                        "messages": t["messages"], "completions": t["answers"], "ranks": label["ranks"],
                        "round": t["round"], "prompt_id": t["prompt_id"], "labeler": label["labeler"],
                        "time": label["time"], "flags": label.get("flags", {})})  # fmt: skip
    return records


def wait_for_labels(sub: Path, prompts: list[dict], answers: list[list[str]], r: int) -> list[dict]:
    """The round's comparisons once every task is ranked; until then, write the tasks and say what to do."""
    if not (sub / TASKS).exists():
        write_tasks(sub, prompts, answers, r)
    pending = labels_pending(sub)
    if pending:
        raise LabelsPending(
            f"round {r}: {pending} of {len(read_jsonl(sub / TASKS))} tasks await labels; "
            f"run `instructflow label serve --round {r}` (or export/import), then run the round again"
        )
    return comparisons(sub)


def export_pending(sub: Path, out: Path) -> int:
    """The tasks nobody has ranked, for another labeling tool."""
    done = done_tasks(read_labels(sub))
    hidden = ("models", "prompt_index")  # an evaluation pair's authors: a blinded labeler must not see them
    pending = [
        {k: v for k, v in t.items() if k not in hidden} for t in read_jsonl(sub / TASKS) if t["task_id"] not in done
    ]
    write_jsonl(out, pending)
    return len(pending)


def import_labels(sub: Path, source: Path, labeler: str) -> int:
    """Finished tasks from another tool: rows {task_id, ranks[, labeler, flags]}, all checked before any is kept."""
    tasks = {t["task_id"]: t for t in read_jsonl(sub / TASKS)}
    done, labels = done_tasks(read_labels(sub)), []
    for number, row in iter_jsonl(source):
        if not isinstance(row, dict) or row.get("task_id") not in tasks:
            raise DataError(source, number, f"unknown task_id {row.get('task_id') if isinstance(row, dict) else row!r}")
        if row["task_id"] in done:
            raise DataError(source, number, "already ranked (its first ranking stands)", row["task_id"])
        done.add(row["task_id"])
        try:
            labels.append(
                label_record(tasks[row["task_id"]], row.get("ranks"), row.get("labeler", labeler), row.get("flags"))
            )
        except DataError as e:
            raise DataError(source, number, e.problem, row["task_id"]) from None
    for label in labels:
        append_label(sub, label)
    return len(labels)
