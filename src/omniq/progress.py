"""``omniq.current_task()``: the running task as its own code sees it, and its progress reports.

::

    @oq.task
    def import_rows(path: str) -> int:
        rows = read(path)
        for n, row in enumerate(rows, 1):
            store(row)
            omniq.current_task().set_progress(n / len(rows), note=f"row {n}", data={"last": row.id})
        return len(rows)

The same call works in ``async def`` tasks, in sync tasks on a thread pool, in a process pool's
children and in gevent greenlets: reporting does no I/O where the task runs. It checks the value
(a clear error naming it, in the task's own code), keeps it as the task's latest report and returns
at once; the worker writes the latest report to the store, at most one write per
:data:`~omniq.workers._progress.WRITE_INTERVAL` per task (a task that reports in a tight loop costs
the store a few writes a second, the last value winning), and the final report before the task's
outcome is acknowledged. Nothing needs an event loop, so there is no sync twin to choose and
nothing to ``await``.

The worker puts each task's context in a context variable as the run begins, in the task's own
context (the one ``omniq.callbacks.around_run`` wrappers are entered in): thread-pool calls get a
copy of it, gevent greenlets run in it, and a process pool's child sets its own, which sends the
reports to its parent over the task's pipe.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from omniq._time import utcnow
from omniq.exceptions import NoCurrentTask
from omniq.models.progress import TaskProgress, check_fraction, check_note
from omniq.models.task import Task
from omniq.serialization import Serializer

#: Where a report goes: the worker's writer, or a child's pipe to its parent.
Report = Callable[[str, str, TaskProgress], None]

_current: ContextVar[TaskContext] = ContextVar("omniq_current_task")
#: encodes partial data once where the task reports, so that data that cannot be stored fails
#: there (the store's own serializer adds only a signature, which is not counted in the limit)
_checker = Serializer()


class TaskContext:
    """The running task, for its own code: what it is (``task``, ``id``, ``attempt``) and where
    it reports progress (:meth:`set_progress`)."""

    __slots__ = ("_last", "_report", "task")

    def __init__(self, task: Task, report: Report) -> None:
        self.task = task
        self._report = report
        self._last: TaskProgress | None = None

    def __repr__(self) -> str:
        return f"<TaskContext {self.task.id} {self.task.func} attempt {self.task.attempts}>"

    @property
    def id(self) -> str:
        return self.task.id

    @property
    def attempt(self) -> int:
        """1 on the first run, 2 on the first retry..."""
        return self.task.attempts

    @property
    def progress(self) -> TaskProgress | None:
        """What this run last reported (None: nothing yet)."""
        return self._last

    def set_progress(self, fraction: float, note: str | None = None, *, data: Any = None) -> None:
        """Reports how far the task got: ``fraction`` from 0 to 1, an optional short ``note``
        (at most 1000 characters) and optional small partial ``data`` (plain data, at most
        16 KiB encoded). Returns at once; see the module docstring for when it is written.
        Raises TypeError/ValueError (or SerializationError for data that is not plain) naming
        the bad value."""
        progress = TaskProgress(
            fraction=check_fraction(fraction),
            note=check_note(note),
            data=data,
            attempt=self.task.attempts,
            updated_at=utcnow(),
        )
        if data is not None:
            _checker.encode_progress(progress, self.task.id)
        self.report(progress)

    def report(self, progress: TaskProgress) -> None:
        """Passes on a report already checked (one a process pool's child sent its parent)."""
        self._last = progress
        self._report(self.task.id, self.task.claim or "", progress)


def current_task() -> TaskContext:
    """The task running here; :class:`~omniq.exceptions.NoCurrentTask` outside one."""
    try:
        return _current.get()
    except LookupError:
        raise NoCurrentTask(
            "omniq.current_task() was called outside a running task: it works only in the code "
            "of a task that a worker runs (any worker type, sync or async)"
        ) from None


def enter(task: Task, report: Report) -> TaskContext:
    """Makes ``task`` the current task of this context (the worker, as a run begins)."""
    context = TaskContext(task, report)
    _current.set(context)
    return context


__all__ = ["NoCurrentTask", "Report", "TaskContext", "current_task", "enter"]
