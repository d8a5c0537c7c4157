"""The OmniQ demo (``omniq demo``): a realistic mix of tasks on the embedded default backend.

It enqueues sync and async functions on three queues, one that fails once and succeeds on retry,
a delayed one, and one that is meant to end DEAD; runs a worker in this process with a live
progress display; then checks every outcome and the events recorded for it. It exits 0 only if
every task ended as expected, and says which did not otherwise.

The task functions live here, at module level, so that a worker finds them by their import path
(``omniq.demo:resize_image``): that is how tasks travel between processes.
"""

from __future__ import annotations

import asyncio
import inspect
import secrets
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from omniq._redact import redact_url
from omniq._time import utcnow
from omniq.backend import create_backend
from omniq.config import get_settings
from omniq.core import AsyncOmniQ
from omniq.models.event import EventType, TaskEvent
from omniq.models.result import TaskResult
from omniq.models.task import Task, TaskStatus
from omniq.storage.base import BaseEventStorage, BaseResultStorage
from omniq.storage.memory import AsyncMemoryEventStorage

PROJECT = "demo"
QUEUES = ("high", "medium", "low")

# --- the tasks -----------------------------------------------------------------------------------


def resize_image(name: str, width: int) -> str:
    time.sleep(0.05)  # blocking work: the async worker runs sync functions in its thread pool
    stem, dot, ext = name.rpartition(".")
    return f"{stem}_{width}{dot}{ext}"


async def fetch_page(url: str) -> int:
    await asyncio.sleep(0.05)  # I/O: runs on the worker's event loop
    return 200 if url.startswith("https://") else 400


async def build_report(rows: list[int]) -> dict[str, int]:
    await asyncio.sleep(0.02)
    return {"rows": len(rows), "total": sum(rows)}


# The first call for an order fails. The counter is per process: enough here, where the worker
# runs in the demo's own process. A worker in another process would keep its own count (so the
# task would fail once there too, which its retries absorb).
_charge_attempts: Counter[str] = Counter()
_charge_lock = threading.Lock()


def charge_card(order_id: str) -> str:
    with _charge_lock:
        _charge_attempts[order_id] += 1
        attempt = _charge_attempts[order_id]
    if attempt == 1:
        raise ConnectionError(f"payment gateway timed out for {order_id}")
    return "paid"


def send_reminder(user: str) -> str:
    return f"sent to {user}"


def import_file(path: str) -> None:
    raise ValueError(f"{path} is corrupt")  # every attempt fails: the task ends DEAD


# --- the plan ------------------------------------------------------------------------------------


@dataclass
class Step:
    """One task of the demo and what it must end as."""

    func: Callable[..., Any]
    args: tuple[Any, ...]
    options: dict[str, Any]
    status: TaskStatus
    expect: Any  # the value returned, or the error type of a DEAD task
    note: str = ""  # what this task shows
    attempts: int = 1
    task_id: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def queue(self) -> str:
        return str(self.options["queue_name"])

    @property
    def label(self) -> str:
        kind = "async" if inspect.iscoroutinefunction(self.func) else "sync"
        return f"{self.func.__name__} ({kind}{', ' + self.note if self.note else ''})"


def plan(run_id: str) -> list[Step]:
    order = f"order-{run_id}"  # unique per run: a re-run never meets an old attempt count
    ok = TaskStatus.SUCCESS
    return [
        Step(resize_image, ("beach.jpg", 640), {"queue_name": "high"}, ok, "beach_640.jpg"),
        Step(fetch_page, ("https://example.org",), {"queue_name": "high"}, ok, 200),
        Step(resize_image, ("forest.jpg", 1280), {"queue_name": "medium"}, ok, "forest_1280.jpg"),
        Step(build_report, ([3, 5, 8],), {"queue_name": "medium"}, ok, {"rows": 3, "total": 16}),
        Step(charge_card, (order,), {"queue_name": "medium", "max_retries": 2, "retry_delay": 0.1},
             ok, "paid", note="fails once, retried", attempts=2),
        Step(fetch_page, ("https://omniq.dev",), {"queue_name": "low", "priority": 5}, ok, 200,
             note="priority 5"),
        Step(send_reminder, ("ada",), {"queue_name": "low", "run_in": 0.5}, ok, "sent to ada",
             note="delayed 0.5s"),
        Step(import_file, ("data.csv",), {"queue_name": "low", "max_retries": 1,
             "retry_delay": 0.1}, TaskStatus.DEAD, "ValueError", note="meant to end DEAD",
             attempts=2),
    ]  # fmt: skip


# --- running it ----------------------------------------------------------------------------------


def build_app(url: str | None = None) -> tuple[AsyncOmniQ, str]:
    """The demo's application on ``url`` or on the default backend (the OMNIQ_* settings), with
    that backend's own event storage, or an in-memory one where the backend has none. Returns it
    and a description of where it runs (passwords masked)."""
    settings = get_settings()
    if url is None:
        url = settings.TASK_QUEUE_URL
        backend_type = None if url else settings.TASK_QUEUE_TYPE
        results_set = bool(settings.RESULT_STORAGE_TYPE or settings.RESULT_STORAGE_URL)
        events_set = bool(settings.EVENT_STORAGE_TYPE or settings.EVENT_STORAGE_URL)
    else:
        backend_type, results_set, events_set = None, False, False
    backend = create_backend(backend_type, url, project_name=PROJECT)
    results: BaseResultStorage | None = None if results_set else backend.result_storage
    events: BaseEventStorage | None = None
    if not events_set:
        has_events = type(backend).event_storage_class is not None
        events = (
            backend.event_storage if has_events else AsyncMemoryEventStorage(project_name=PROJECT)
        )
    app = AsyncOmniQ(PROJECT, task_queue=backend.queue, result_store=results, event_store=events)
    where = redact_url(url) if url else f"{backend.name} (the default backend)"
    return app, where


async def run_demo(
    built: tuple[AsyncOmniQ, str] | None = None,
    *,
    console: Console | None = None,
    timeout: float = 30.0,
) -> int:
    """Runs the demo on ``built`` (an application and where it runs; default:
    :func:`build_app`) and returns the exit status: 0 when every task ended as expected."""
    out = console or Console()
    app, where = built or build_app()
    steps = plan(secrets.token_hex(4))
    async with app:
        # a run that was interrupted may have left tasks waiting: start from empty queues
        for queue in QUEUES:
            await app.task_queue.purge(queue)
        since = utcnow()
        started = time.perf_counter()
        ids = await app.enqueue_many([{"func": s.func, "args": s.args, **s.options} for s in steps])
        for step, task_id in zip(steps, ids, strict=True):
            step.task_id = task_id
        await app.start_worker(queues=list(QUEUES), concurrency=8)
        worker = app.worker
        assert worker is not None
        out.print(
            Text.assemble(
                ("OmniQ demo", "bold"),
                f": {len(steps)} tasks on ",
                (where, "cyan"),
                f" (project {PROJECT!r}, queues {', '.join(QUEUES)}), one ",
                f"{worker.worker_type} worker (concurrency {worker.concurrency}) in this process",
            )
        )
        tasks = await _watch(app, steps, out, timeout)
        elapsed = time.perf_counter() - started
        results = await app.result_store.get_many(ids)
        assert app.event_store is not None
        mine = set(ids)
        events = [
            e for e in await app.get_events(start_time=since, limit=100_000) if e.task_id in mine
        ]
        await app.stop_worker()
        events_kind = app.event_store.backend_name
    for step in steps:
        step.problems = check(step, tasks.get(step.task_id), results.get(step.task_id), events)
    out.print(results_table(steps, tasks, results))
    out.print(events_summary(events, events_kind))
    failed = [s for s in steps if s.problems]
    if failed:
        out.print(
            Text(
                f"{len(failed)} of {len(steps)} tasks did not end as expected: "
                + "; ".join(f"{s.label}: {', '.join(s.problems)}" for s in failed),
                style="bold red",
            )
        )
        return 1
    out.print(
        Text(f"All {len(steps)} tasks ended as expected in {elapsed:.2f}s.", style="bold green")
    )
    return 0


async def _watch(
    app: AsyncOmniQ, steps: Sequence[Step], out: Console, timeout: float
) -> dict[str, Task]:
    """Shows progress until every task is final or ``timeout`` passes; returns the tasks' last
    state. Reading every task each tenth of a second is what a display needs; the worker itself
    never polls."""
    tasks: dict[str, Task] = {}
    columns = (
        SpinnerColumn(),
        TextColumn("[bold]tasks"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[states]}"),
        TimeElapsedColumn(),
    )
    deadline = time.monotonic() + timeout
    with Progress(*columns, console=out) as progress:
        bar = progress.add_task("tasks", total=len(steps), states="")
        while True:
            for step in steps:
                task = await app.get_task(step.task_id)
                if task is not None:
                    tasks[step.task_id] = task
            states = Counter(_state(t) for t in tasks.values())
            done = sum(1 for t in tasks.values() if t.is_final)
            shown = " · ".join(f"{name} {n}" for name, n in sorted(states.items()))
            progress.update(bar, completed=done, states=shown)
            if done == len(steps) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
    return tasks


def _state(task: Task) -> str:
    if task.status is TaskStatus.PENDING and task.attempts:
        return "retrying"
    if task.status is TaskStatus.PENDING and task.eta is not None and task.eta > utcnow():
        return "delayed"
    return task.status.value


def check(
    step: Step, task: Task | None, result: TaskResult | None, events: Sequence[TaskEvent]
) -> list[str]:
    """What is wrong with one task's outcome (an empty list when nothing is)."""
    if task is None:
        return ["the task vanished from its queue"]
    problems = []
    if task.status is not step.status:
        problems.append(f"status {task.status.value}, expected {step.status.value}")
    if task.attempts != step.attempts:
        problems.append(f"{task.attempts} attempts, expected {step.attempts}")
    if result is None:
        problems.append("no result stored")
    elif step.status is TaskStatus.SUCCESS and result.result != step.expect:
        problems.append(f"returned {result.result!r}, expected {step.expect!r}")
    elif step.status is TaskStatus.DEAD and result.error_type != step.expect:
        problems.append(f"error {result.error_type}, expected {step.expect}")
    eta = step.options.get("run_in")
    if eta is not None and task.eta is not None and _before(task.started_at, task.eta):
        problems.append("started before its delay was over")
    mine = Counter(e.event_type for e in events if e.task_id == step.task_id)
    final = EventType.COMPLETED if step.status is TaskStatus.SUCCESS else EventType.DEAD
    for kind in (EventType.ENQUEUED, final):
        if mine[kind] != 1:
            problems.append(f"{mine[kind]} {kind.value} events, expected 1")
    return problems


def _before(started: datetime | None, eta: datetime) -> bool:
    return started is not None and started < eta


def results_table(
    steps: Sequence[Step], tasks: dict[str, Task], results: dict[str, TaskResult]
) -> Table:
    table = Table(title="Results", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("task")
    table.add_column("queue")
    table.add_column("status")
    table.add_column("tries", justify="right")
    table.add_column("result / error", overflow="fold")
    table.add_column("check")
    for step in steps:
        task, result = tasks.get(step.task_id), results.get(step.task_id)
        status = task.status.value if task else "missing"
        if result is None:
            shown = "-"
        elif result.success:
            shown = repr(result.result)
        else:
            shown = f"{result.error_type}: {result.error}"
        table.add_row(
            step.label,
            step.queue,
            Text(status, style="green" if status == "success" else "yellow"),
            str(task.attempts) if task else "-",
            shown,
            Text("ok", style="green")
            if not step.problems
            else Text("; ".join(step.problems), style="bold red"),
        )
    return table


def events_summary(events: Sequence[TaskEvent], store: str) -> Text:
    counts = Counter(e.event_type for e in events)
    order = [t for t in EventType if t in counts]
    line = Text.assemble(("Events", "bold"), f" ({len(events)}, from the {store} event store): ")
    line.append(" · ".join(f"{t.value} {counts[t]}" for t in order))
    return line


def main() -> int:
    return asyncio.run(run_demo())


if __name__ == "__main__":
    sys.exit(main())
