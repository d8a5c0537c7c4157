"""What the dashboard, its JSON API and the ``omniq`` commands read and do, through the three
storage interfaces only (task queue, result store, event store), so every backend serves them.

Everything here returns plain JSON-ready values: the HTML pages, the REST API and ``--json`` show
the same data. Nothing here imports Litestar, so the command line works without the dashboard
extra.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from omniq._time import utcnow
from omniq.core import AsyncOmniQ
from omniq.exceptions import TaskNotFound
from omniq.models.event import EventType, TaskEvent
from omniq.models.progress import TaskProgress
from omniq.models.result import TaskResult
from omniq.models.schedule import Schedule, ScheduleState
from omniq.models.task import Task, TaskStatus
from omniq.models.worker import WorkerInfo
from omniq.queue.builder import validate_queue_name
from omniq.queue.scheduler import occurrence_task
from omniq.storage.base import Capability

#: The longest text of an argument, result or error shown in a list; the detail shows it whole.
SHORT = 120
#: How many tasks a function-name filter reads at most to fill one page on a store without an
#: index by function (``lists_by_function`` False; the page says when the scan stopped short).
FUNC_SCAN_LIMIT = 5000
#: How many function names a filter may match on a store with an index by function (each is
#: one more index range per page).
FUNC_MATCH_LIMIT = 50
#: The deepest a page may start by number (``page * limit``) without a cursor: a store skips
#: that many tasks to get there (1.5 s on SQLite, 4 s on PostgreSQL for 500,000), while a cursor
#: (``after``) costs the same at any depth.
MAX_OFFSET = 10_000
#: Tasks a function-name filter reads per call, newest first from a cursor.
FUNC_SCAN_CHUNK = 500


def plain(value: Any) -> Any:
    """Any argument or result as JSON-ready data. A value msgspec cannot encode (a custom object
    that travelled with dill) becomes its ``repr``: shown as text, never executed or trusted."""
    try:
        return msgspec.to_builtins(value, enc_hook=repr, str_keys=True)
    except (TypeError, ValueError, msgspec.EncodeError):
        return repr(value)


def short(value: Any, limit: int = SHORT) -> str:
    """One line for a table cell."""
    text = value if isinstance(value, str) else msgspec.json.encode(plain(value)).decode()
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def task_row(task: Task) -> dict[str, Any]:
    """A task as one line of a list: what it is, where it is in its life, and why it failed."""
    return {
        "id": task.id,
        "func": task.func,
        "queue": task.queue_name,
        "status": task.status.value,
        "priority": task.priority,
        "attempts": task.attempts,
        "max_attempts": task.max_attempts,
        "args": short([list(task.args), task.kwargs] if task.kwargs else list(task.args)),
        "created_at": iso(task.created_at),
        "eta": iso(task.eta),
        "started_at": iso(task.started_at),
        "finished_at": iso(task.finished_at),
        "expires_at": iso(task.expires_at),
        "worker_id": task.worker_id,
        "schedule_id": task.schedule_id,
        "error_type": task.error_type,
        "error_message": short(task.error_message) if task.error_message else None,
        "cancel_requested": task.cancel_requested,
        "progress": progress_data(task.progress),
    }


def progress_data(progress: TaskProgress | None, *, with_data: bool = False) -> Any:
    """A task's last progress report (None: it never reported); its partial data only where
    one task is shown, not in lists."""
    if progress is None:
        return None
    row = {
        "fraction": progress.fraction,
        "percent": progress.percent,
        "note": progress.note,
        "attempt": progress.attempt,
        "updated_at": iso(progress.updated_at),
    }
    if with_data:
        row["data"] = plain(progress.data)
    return row


def result_data(result: TaskResult | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {
        "status": result.status.value,
        "result": plain(result.result),
        "error": result.error,
        "error_type": result.error_type,
        "traceback": result.traceback,
        "worker_id": result.worker_id,
        "attempts": result.attempts,
        "started_at": iso(result.started_at),
        "finished_at": iso(result.finished_at),
        "duration": result.duration,
        "expires_at": iso(result.expires_at),
    }


def event_row(event: TaskEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "timestamp": iso(event.timestamp),
        "event_type": event.event_type.value,
        "task_id": event.task_id,
        "queue": event.queue_name,
        "func": event.func,
        "worker_id": event.worker_id,
        "schedule_id": event.schedule_id,
        "attempt": event.attempt,
        "details": plain(event.details),
    }


def schedule_row(schedule: Schedule) -> dict[str, Any]:
    if schedule.cron is not None:
        timing = f"cron {schedule.cron} ({schedule.timezone})"
    elif schedule.interval is not None:
        timing = f"every {schedule.interval:g}s"
    else:
        timing = f"once at {iso(schedule.run_at)}"
    return {
        "id": schedule.id,
        "func": schedule.func,
        "queue": schedule.queue_name,
        "state": schedule.state.value,
        "timing": timing,
        "cron": schedule.cron,
        "interval": schedule.interval,
        "run_at": iso(schedule.run_at),
        "next_run_at": iso(schedule.next_run_at),
        "last_run_at": iso(schedule.last_run_at),
        "last_task_id": schedule.last_task_id,
        "run_count": schedule.run_count,
        "max_runs": schedule.max_runs,
        "args": short(
            [list(schedule.args), schedule.kwargs] if schedule.kwargs else list(schedule.args)
        ),
    }


def worker_row(info: WorkerInfo, now: datetime | None = None) -> dict[str, Any]:
    row: dict[str, Any] = msgspec.to_builtins(info)
    row["uptime"] = round(info.uptime, 3)
    row["seen_ago"] = round(((now or utcnow()) - info.last_seen).total_seconds(), 3)
    return row


@dataclass
class TaskFilter:
    """The filters of the task list. ``func`` matches a substring of the function's name;
    ``search`` is a task id (exact) or the start of one.

    Where the page is: ``after`` (the tasks older than that task: the "older" button) or
    ``before`` (the ones newer than it: "newer"), cursors that cost the same at any depth;
    without either, ``page`` (0 = newest), read by offset. ``page`` also numbers a cursor's
    page for display."""

    queue: str | None = None
    status: TaskStatus | None = None
    func: str | None = None
    search: str | None = None
    limit: int = 50
    page: int = 0
    after: str | None = None
    before: str | None = None

    @classmethod
    def parse(
        cls,
        queue: str | None = None,
        status: str | None = None,
        func: str | None = None,
        search: str | None = None,
        limit: int = 50,
        page: int = 0,
        after: str | None = None,
        before: str | None = None,
    ) -> TaskFilter:
        """Empty strings (an untouched form field) mean no filter; a bad status or a limit out
        of range is refused naming the value."""
        st: TaskStatus | None = None
        if status:
            try:
                st = TaskStatus(status)
            except ValueError:
                allowed = ", ".join(s.value for s in TaskStatus)
                raise ValueError(f"status {status!r} is not one of {allowed}") from None
        if queue:
            validate_queue_name(queue)
        if not 1 <= limit <= 1000:
            raise ValueError(f"limit must be between 1 and 1000, got {limit!r}")
        if page < 0:
            raise ValueError(f"page must be >= 0, got {page!r}")
        if after and before:
            raise ValueError("give after (older tasks) or before (newer ones), not both")
        if not (after or before) and page * limit > MAX_OFFSET:
            raise ValueError(
                f"page {page!r} of {limit!r} tasks starts {page * limit} tasks deep, more than "
                f"{MAX_OFFSET} read by number: page by cursor instead, with after=<the id of the "
                "last task shown> (each page gives it as 'after')"
            )
        return cls(
            queue=queue or None,
            status=st,
            func=(func or "").strip() or None,
            search=(search or "").strip() or None,
            limit=limit,
            page=page,
            after=after or None,
            before=before or None,
        )


@dataclass
class TaskPage:
    rows: list[dict[str, Any]]
    total: int | None  # None when a function filter makes the count unknown
    page: int
    limit: int
    has_more: bool  # older tasks exist: ``after`` reads them
    note: str | None = None
    filters: dict[str, Any] = field(default_factory=dict)
    has_newer: bool = False  # newer tasks exist: ``before`` reads them
    #: where the next page starts when it is not the last row (a scan that stopped short)
    scanned_to: str | None = None

    @property
    def after(self) -> str | None:
        """The cursor of the next (older) page."""
        if not self.has_more:
            return None
        return self.scanned_to or (self.rows[-1]["id"] if self.rows else None)

    @property
    def before(self) -> str | None:
        """The cursor of the previous (newer) page."""
        return self.rows[0]["id"] if self.rows and self.has_newer else None

    def to_json(self) -> dict[str, Any]:
        return {
            "tasks": self.rows,
            "total": self.total,
            "page": self.page,
            "limit": self.limit,
            "has_more": self.has_more,
            "after": self.after,
            "before": self.before,
            "note": self.note,
            "filters": self.filters,
        }


class Queries:
    """One application's data as the dashboard and the commands see it.

    ``stats_ttl``: the counts by status (a scan of the whole store on most backends) are reused
    for that many seconds, so one page render, the metrics sampler and every open page share one
    reading; :meth:`forget` drops it after an action. The commands keep the default, 0.
    """

    def __init__(self, app: AsyncOmniQ, *, stats_ttl: float = 0.0) -> None:
        self.app = app
        self.queue = app.task_queue
        self.stats_ttl = stats_ttl
        self._stats: tuple[float, dict[str, dict[str, int]]] | None = None
        self._stats_lock = asyncio.Lock()

    async def stats(self, *, fresh: bool = False) -> dict[str, dict[str, int]]:
        """Counts by queue and status, at most ``stats_ttl`` seconds old (``fresh``: read now,
        for the users that must see every task); callers arriving while a reading is under way
        wait for it instead of starting another."""
        async with self._stats_lock:
            now = time.monotonic()
            if not fresh and self._stats is not None and now - self._stats[0] < self.stats_ttl:
                return self._stats[1]
            value = await self.queue.stats()
            self._stats = (time.monotonic(), value)
            return value

    def forget(self) -> None:
        self._stats = None

    @property
    def has_events(self) -> bool:
        return self.app.event_store is not None

    # -- overview ----------------------------------------------------------------------------
    async def queues(self) -> dict[str, dict[str, Any]]:
        """Every queue with its waiting size and counts by status; configured queues first.
        The size is the pending count of the same reading (what ``get_queue_size`` counts), so
        the two never disagree and a big store is read once, not once more per queue."""
        stats = await self.stats()
        names = list(self.queue.queues or [])
        names += [name for name in sorted(stats) if name not in names]
        out: dict[str, dict[str, Any]] = {}
        for name in names:
            counts = {status: n for status, n in stats.get(name, {}).items() if n}
            out[name] = {
                "size": counts.get(TaskStatus.PENDING.value, 0),
                "total": sum(counts.values()),
                "counts": counts,
            }
        return out

    async def workers(self) -> list[dict[str, Any]] | None:
        """Live workers, or None when the backend keeps no worker registry."""
        if not self.queue.supports(Capability.WORKERS):
            return None
        found = await self.queue.list_workers()
        now = utcnow()
        return [worker_row(w, now) for w in found]

    # -- tasks -------------------------------------------------------------------------------
    async def _count(self, queue: str | None, status: TaskStatus | None) -> int:
        # fresh: the page's count must include the tasks it shows (kept counts: a few rows)
        stats = await self.stats(fresh=True)
        return sum(
            n
            for q, counts in stats.items()
            if queue is None or q == queue
            for s, n in counts.items()
            if status is None or s == status.value
        )

    async def tasks(self, f: TaskFilter) -> TaskPage:
        """Newest first, a page read from a cursor (``after``/``before``) or by offset (``page``):
        the stores read from the cursor's place, so a deep page costs what the first does. A
        cursor task that is gone (purged, trimmed) sends the reader back to the newest page."""
        filters = {
            "queue": f.queue,
            "status": f.status.value if f.status else None,
            "func": f.func,
            "search": f.search,
        }
        if f.search:
            return await self._search(f, filters)
        note = None
        funcs: list[str] | None = None
        if f.func and self.queue.lists_by_function:
            funcs, note = await self._functions_matching(f.func)
            if not funcs:
                return TaskPage([], 0, 0, f.limit, False, note, filters)
        try:
            if f.func and funcs is None:
                return await self._by_func(f, filters)
            rows, page, has_more, has_newer = await self._page(f, funcs)
        except TaskNotFound:
            if not (f.after or f.before):
                raise
            note = "the task this page started from is gone: back to the newest tasks"
            f = TaskFilter(f.queue, f.status, f.func, f.search, f.limit)
            if f.func and funcs is None:
                page_ = await self._by_func(f, filters)
                page_.note = note
                return page_
            rows, page, has_more, has_newer = await self._page(f, funcs)
        # by function: no kept count to read, and counting would read every match
        total = None if funcs is not None else await self._count(f.queue, f.status)
        return TaskPage(
            [task_row(t) for t in rows], total, page, f.limit, has_more, note, filters, has_newer
        )

    async def functions(self) -> list[str]:
        """The function names of the stored tasks, where the store reads them from an index
        (empty elsewhere: reading them would read every task)."""
        if not self.queue.lists_by_function:
            return []
        return await self.queue.task_functions()

    async def _functions_matching(self, text: str) -> tuple[list[str], str | None]:
        """The stored functions whose name contains ``text`` (at most
        :data:`FUNC_MATCH_LIMIT`), and a note when none or too many do."""
        names = [name for name in await self.queue.task_functions() if text in name]
        if not names:
            return [], f"no stored task's function name contains {text!r}"
        if len(names) > FUNC_MATCH_LIMIT:
            note = (
                f"{len(names)} functions match {text!r}: showing the first {FUNC_MATCH_LIMIT} "
                "by name; type more of the name"
            )
            return names[:FUNC_MATCH_LIMIT], note
        return names, None

    async def _page(
        self, f: TaskFilter, funcs: list[str] | None = None
    ) -> tuple[list[Task], int, bool, bool]:
        """(tasks newest first, page number, older ones exist, newer ones exist); ``funcs``:
        only the tasks of those functions (a store with an index by function)."""
        if f.before:
            # the newer side: read upwards from the cursor, one more to know if there is more
            found = await self.queue.list_tasks(
                f.queue, f.status, f.limit + 1, after=f.before, func=funcs
            )
            if len(found) <= f.limit:  # reached the newest: show the newest page whole
                return await self._page(TaskFilter(f.queue, f.status, limit=f.limit), funcs)
            found = found[: f.limit]
            found.reverse()
            return found, max(1, f.page), True, True
        found = await self.queue.list_tasks(
            f.queue,
            f.status,
            f.limit + 1,
            0 if f.after else f.page * f.limit,
            after=f.after,
            descending=True,
            func=funcs,
        )
        has_more = len(found) > f.limit
        return found[: f.limit], f.page, has_more, bool(f.after) or f.page > 0

    async def _search(self, f: TaskFilter, filters: dict[str, Any]) -> TaskPage:
        assert f.search is not None
        task = await self.queue.get_task(f.search)
        tasks = [task] if task is not None else []
        tasks = [
            t
            for t in tasks
            if (f.queue is None or t.queue_name == f.queue)
            and (f.status is None or t.status is f.status)
            and (f.func is None or f.func in t.func)
        ]
        note = None if tasks else f"no task with id {f.search!r} matches"
        return TaskPage([task_row(t) for t in tasks], len(tasks), 0, f.limit, False, note, filters)

    async def _by_func(self, f: TaskFilter, filters: dict[str, Any]) -> TaskPage:
        """On a store without an index by function: newest first (older than ``after`` when
        given), reading back in chunks from a cursor until the page is full or
        :data:`FUNC_SCAN_LIMIT` tasks were read. ``page`` without a cursor skips that many pages
        of matches."""
        assert f.func is not None
        skip = 0 if f.after else f.page * f.limit
        rows: list[dict[str, Any]] = []
        scanned = 0
        cursor = f.after
        exhausted = False
        while len(rows) <= f.limit and scanned < FUNC_SCAN_LIMIT:
            found = await self.queue.list_tasks(
                f.queue, f.status, FUNC_SCAN_CHUNK, after=cursor, descending=True
            )
            scanned += len(found)
            for task in found:
                if f.func in task.func:
                    if skip:
                        skip -= 1
                    elif len(rows) <= f.limit:
                        rows.append(task_row(task))
            if len(found) < FUNC_SCAN_CHUNK:
                exhausted = True
                break
            cursor = found[-1].id
        has_more = len(rows) > f.limit
        rows = rows[: f.limit]
        note = scanned_to = None
        if not exhausted and not has_more:  # stopped short: the next page goes on from there
            note = f"searched {scanned} tasks for function {f.func!r}; older ones: next page"
            has_more, scanned_to = True, cursor
        page = TaskPage(
            rows, None, f.page, f.limit, has_more, note, filters, bool(f.after) or f.page > 0
        )
        page.scanned_to = scanned_to
        return page

    async def task(self, task_id: str) -> dict[str, Any]:
        """Everything known of one task: its arguments, state, result, events and TTLs."""
        task = await self.queue.get_task(task_id)
        if task is None:
            raise TaskNotFound(f"no task with id {task_id!r}")
        result = await self.app.result_store.get(task_id)
        events = await self.events(task_id=task_id, limit=200) if self.has_events else None
        row = task_row(task)
        row.update(
            args=plain(list(task.args)),
            kwargs=plain(task.kwargs),
            error_message=task.error_message,
            error_traceback=task.error_traceback,
            depends_on=list(task.depends_on),
            timeout=task.timeout,
            max_retries=task.max_retries,
            result_ttl=task.result_ttl,
            lease_expires_at=iso(task.lease_expires_at),
            metadata=plain(task.metadata),
            progress=progress_data(task.progress, with_data=True),
            result=result_data(result),
            events=events,
        )
        return row

    async def cancel(self, task_id: str) -> bool:
        return await self.queue.cancel(task_id)

    async def requeue(self, task_id: str) -> bool:
        return await self.queue.requeue(task_id)

    # -- dead letters ------------------------------------------------------------------------
    async def dead(
        self,
        queue: str | None = None,
        limit: int = 50,
        page: int = 0,
        *,
        after: str | None = None,
        before: str | None = None,
    ) -> TaskPage:
        return await self.tasks(
            TaskFilter(
                queue=queue,
                status=TaskStatus.DEAD,
                limit=limit,
                page=page,
                after=after,
                before=before,
            )
        )

    async def requeue_all_dead(self, queue: str | None = None) -> int:
        """Re-drives every dead task (of ``queue``); each leaves the dead list as it goes, so
        the first page is read until it comes back empty."""
        moved = 0
        while True:
            batch = await self.queue.list_dead(queue, limit=200)
            if not batch:
                return moved
            progressed = False
            for task in batch:
                if await self.queue.requeue(task.id):
                    moved += 1
                    progressed = True
            if not progressed:  # another process holds them: do not spin
                return moved

    async def purge_dead(self, queue: str | None = None) -> int:
        """Deletes every dead task (of ``queue``) at once; returns how many. Their results
        stay in the result store until their own TTL (see :class:`SupportsPurge`)."""
        if queue is not None:
            validate_queue_name(queue)
        purged = await self.queue.purge_dead(queue)
        self.forget()
        return purged

    # -- schedules ---------------------------------------------------------------------------
    async def schedules(self, state: str | None = None) -> list[dict[str, Any]]:
        st = ScheduleState(state) if state else None
        found = await self.queue.list_schedules(st)
        far = datetime.max.replace(tzinfo=utcnow().tzinfo)
        found.sort(key=lambda s: (s.state is not ScheduleState.ACTIVE, s.next_run_at or far))
        return [schedule_row(s) for s in found]

    async def schedule_action(self, schedule_id: str, action: str) -> Any:
        """``pause``, ``resume``, ``delete`` or ``run`` (enqueue one occurrence now, leaving the
        timeline as it is). Returns what the store said: changed or not, or the new task's id."""
        if action == "pause":
            return await self.queue.pause_schedule(schedule_id)
        if action == "resume":
            return await self.queue.resume_schedule(schedule_id)
        if action == "delete":
            if not await self.queue.delete_schedule(schedule_id):
                raise TaskNotFound(f"no schedule with id {schedule_id!r}")
            return True
        if action == "run":
            schedule = await self.queue.get_schedule(schedule_id)
            if schedule is None:
                raise TaskNotFound(f"no schedule with id {schedule_id!r}")
            task = occurrence_task(schedule, utcnow())
            task.metadata["run_now"] = True
            return await self.queue.enqueue(task)
        raise ValueError(f"schedule action {action!r} is not one of pause, resume, delete, run")

    # -- events ------------------------------------------------------------------------------
    async def events(
        self,
        *,
        task_id: str | None = None,
        event_types: Sequence[str] | None = None,
        queue: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
        descending: bool = False,
    ) -> list[dict[str, Any]]:
        """Events matching the filters (oldest first unless ``descending``); the logger's buffer
        is flushed first so what was just emitted in this process shows."""
        store = self.app.event_store
        if store is None:
            return []
        if self.app.event_logger is not None:
            await self.app.event_logger.flush()
        types = [EventType(t) for t in event_types] if event_types else None
        found = await store.get_events(
            task_id,
            types,
            queue,
            start_time=since,
            limit=limit,
            descending=descending,
        )
        return [event_row(e) for e in found]


__all__ = [
    "FUNC_MATCH_LIMIT",
    "FUNC_SCAN_LIMIT",
    "MAX_OFFSET",
    "Queries",
    "TaskFilter",
    "TaskPage",
    "event_row",
    "plain",
    "result_data",
    "schedule_row",
    "short",
    "task_row",
    "worker_row",
]
