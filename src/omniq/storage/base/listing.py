"""Capabilities: listing and stats (``list_tasks``, ``list_dead``, ``get_queue_size``,
``stats``), and purge.

Listing needs one primitive, ``_list_tasks``, in enqueue order (or its reverse, newest first).
It pages two ways: by a cursor, ``after=`` the id of the last task of the previous page (keyset
pagination: a store reads from the cursor's place on, so a deep page costs what the first does),
or by ``offset`` (kept for compatibility; a store skips that many rows, so it costs more the
deeper it goes). A cursor whose task is gone (purged, or trimmed as an old finished task) is
refused with :class:`~omniq.exceptions.TaskNotFound`: start again from the first page.
``_queue_size`` and ``_stats`` fall back to counting through ``_list_tasks``: correct
everywhere, and a backend that keeps counts overrides them.

Listing by function name (``list_tasks(func=...)``, ``task_functions``) falls back to reading
through ``_list_tasks`` and keeping the matches: correct everywhere, but its cost grows with the
tasks read. A backend with an index by function overrides ``_list_by_func`` and
``_task_functions`` and sets :attr:`SupportsListing.lists_by_function`, which tells a reader
(the dashboard) that filtering by function costs what any other page does.
"""

from __future__ import annotations

from abc import abstractmethod
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import ClassVar

from omniq.exceptions import TaskNotFound
from omniq.models.task import Task, TaskStatus
from omniq.queue.builder import validate_queue_name
from omniq.storage.base.capabilities import Capability
from omniq.storage.base.queue import BaseTaskQueue

#: How many tasks one page of a fallback scan reads.
SCAN_PAGE = 500


def cursor_gone(after: str) -> TaskNotFound:
    """The error of a listing whose cursor task does not exist (any more)."""
    return TaskNotFound(
        f"cannot list after task {after!r}: no such task (deleted since the previous page?); "
        "list again from the first page"
    )


class SupportsListing(BaseTaskQueue):
    """Offers reading the tasks by queue and status, and counting them."""

    provides: ClassVar[Capability | None] = Capability.LISTING

    async def list_tasks(
        self,
        queue: str | None = None,
        status: TaskStatus | str | None = None,
        limit: int = 100,
        offset: int = 0,
        *,
        after: str | None = None,
        descending: bool = False,
        func: str | Sequence[str] | None = None,
    ) -> list[Task]:
        """Tasks of ``queue`` in ``status`` (None: any), in enqueue order (``descending``: newest
        first). ``after``: the id of the last task of the previous page; the page starts right
        after it in this order (raises :class:`TaskNotFound` when that task is gone).
        ``func``: only tasks of that function (``module:name``, exactly), or of any of several."""
        funcs = function_names(func) if func is not None else None
        if queue is not None:
            validate_queue_name(queue)
        st = TaskStatus(status) if status is not None else None
        if limit < 0 or offset < 0:
            raise ValueError(f"limit and offset must be >= 0, got {limit!r}, {offset!r}")
        if after is not None and not (isinstance(after, str) and after):
            raise ValueError(f"after must be the id of a task, got {after!r}")
        await self._ensure()
        if funcs is not None:
            return await self._list_by_func(queue, st, funcs, limit, offset, after, descending)
        return await self._list_tasks(queue, st, limit, offset, after, descending)

    async def task_functions(self, limit: int = 1000) -> list[str]:
        """The names of the functions of the stored tasks, sorted, at most ``limit`` of them:
        what ``list_tasks(func=...)`` can be asked for."""
        if not 1 <= limit <= 100_000:
            raise ValueError(f"limit must be between 1 and 100000, got {limit!r}")
        await self._ensure()
        return await self._task_functions(limit)

    async def list_dead(
        self,
        queue: str | None = None,
        *,
        limit: int = 100,
        offset: int = 0,
        after: str | None = None,
        descending: bool = False,
    ) -> list[Task]:
        return await self.list_tasks(
            queue, TaskStatus.DEAD, limit, offset, after=after, descending=descending
        )

    async def get_queue_size(self, queue: str = "default") -> int:
        """Tasks waiting in ``queue`` (pending, including delayed ones)."""
        validate_queue_name(queue)
        await self._ensure()
        return await self._queue_size(queue)

    async def stats(self) -> dict[str, dict[str, int]]:
        """Counts by queue and status: ``{"default": {"pending": 3, "success": 10}}``."""
        await self._ensure()
        return await self._stats()

    async def _scan(self, queue: str | None, status: TaskStatus | None) -> AsyncIterator[Task]:
        """Every matching task, a page at a time (the fallbacks' way of reading everything)."""
        offset = 0
        while True:
            page = await self._list_tasks(queue, status, SCAN_PAGE, offset, None, False)
            for task in page:
                yield task
            if len(page) < SCAN_PAGE:
                return
            offset += len(page)

    @abstractmethod
    async def _list_tasks(
        self,
        queue: str | None,
        status: TaskStatus | None,
        limit: int,
        offset: int,
        after: str | None = None,
        descending: bool = False,
    ) -> list[Task]:
        """Matching tasks in enqueue order (``descending``: newest first), from right after the
        task ``after`` when given (:func:`cursor_gone` when no such task exists), skipping
        ``offset``."""

    async def _list_by_func(
        self,
        queue: str | None,
        status: TaskStatus | None,
        funcs: Sequence[str],
        limit: int,
        offset: int,
        after: str | None,
        descending: bool,
    ) -> list[Task]:
        """Fallback: reads on through :meth:`_list_tasks` from the cursor, a page at a time,
        keeping the tasks of ``funcs`` until ``offset + limit`` were found or the tasks end."""
        wanted = frozenset(funcs)
        found: list[Task] = []
        cursor = after
        while len(found) < offset + limit:
            page = await self._list_tasks(queue, status, SCAN_PAGE, 0, cursor, descending)
            found += [task for task in page if task.func in wanted]
            if len(page) < SCAN_PAGE:
                break
            cursor = page[-1].id
        return found[offset : offset + limit]

    async def _task_functions(self, limit: int) -> list[str]:
        """Fallback: the functions of every task, read through :meth:`_list_tasks`."""
        names = {task.func async for task in self._scan(None, None)}
        return sorted(names)[:limit]

    async def _queue_size(self, queue: str) -> int:
        """Fallback: counts the PENDING tasks of ``queue`` through :meth:`_list_tasks`."""
        return sum([1 async for _ in self._scan(queue, TaskStatus.PENDING)])

    async def _stats(self) -> dict[str, dict[str, int]]:
        """Fallback: counts every task through :meth:`_list_tasks`."""
        counts: dict[str, Counter[str]] = {}
        async for task in self._scan(None, None):
            counts.setdefault(task.queue_name, Counter())[task.status.value] += 1
        return {queue: dict(by_status) for queue, by_status in counts.items()}


def function_names(func: str | Sequence[str]) -> tuple[str, ...]:
    """``list_tasks``'s ``func``, checked: a name or names of functions, none of them empty."""
    names = (func,) if isinstance(func, str) else tuple(func)
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"func must name a function (module:name), got {name!r}")
    if not names:
        raise ValueError("func needs at least one function name (or None: every function)")
    return names


#: What ``purge`` deletes unless told otherwise: the tasks waiting in a queue.
WAITING_STATUSES = frozenset({TaskStatus.PENDING, TaskStatus.WAITING})
#: What a purge may delete. A RUNNING task is held by a worker whose acknowledgement must find
#: it; SUCCESS tasks are what dependents and ``keep_finished`` look at (``cleanup`` owns them).
PURGEABLE_STATUSES = frozenset(TaskStatus) - {TaskStatus.RUNNING, TaskStatus.SUCCESS}


def purge_statuses(statuses: Iterable[TaskStatus | str]) -> frozenset[TaskStatus]:
    """The statuses a purge was asked for, checked: a name that is no status, a status a purge
    may not delete, or none at all is refused naming it."""
    wanted: set[TaskStatus] = set()
    for status in statuses:
        try:
            st = TaskStatus(status)
        except ValueError:
            allowed = ", ".join(sorted(s.value for s in PURGEABLE_STATUSES))
            raise ValueError(f"status {status!r} cannot be purged; one of {allowed}") from None
        if st not in PURGEABLE_STATUSES:
            allowed = ", ".join(sorted(s.value for s in PURGEABLE_STATUSES))
            raise ValueError(f"status {st.value!r} cannot be purged; one of {allowed}")
        wanted.add(st)
    if not wanted:
        raise ValueError("purge needs at least one status")
    return frozenset(wanted)


class SupportsPurge(BaseTaskQueue):
    """Offers deleting tasks of a queue by status at once: the waiting ones (``purge``) or the
    dead letters (``purge_dead``).

    Only task records go. Results live in the result store, possibly another backend, and
    expire by their own ``result_ttl`` (a day by default): a purged dead task's result still
    answers ``get_result`` until then, and ``cleanup`` removes it afterwards.
    """

    provides: ClassVar[Capability | None] = Capability.PURGE

    async def purge(
        self,
        queue: str | None = "default",
        *,
        statuses: Iterable[TaskStatus | str] = WAITING_STATUSES,
    ) -> int:
        """Deletes the tasks of ``queue`` (None: of every queue) in ``statuses`` (by default
        pending, delayed ones included, and waiting on dependencies); returns how many.
        RUNNING and SUCCESS tasks cannot be purged (:data:`PURGEABLE_STATUSES`)."""
        if queue is not None:
            validate_queue_name(queue)
        wanted = purge_statuses(statuses)
        await self._ensure()
        return await self._purge(queue, wanted)

    async def purge_dead(self, queue: str | None = None) -> int:
        """Deletes the dead letters of ``queue`` (None: of every queue); returns how many."""
        return await self.purge(queue, statuses=(TaskStatus.DEAD,))

    @abstractmethod
    async def _purge(self, queue: str | None, statuses: frozenset[TaskStatus]) -> int:
        """Deletes the tasks of ``queue`` (None: every queue) whose status is one of
        ``statuses`` (never RUNNING or SUCCESS) at once; returns how many."""
