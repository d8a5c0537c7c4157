"""Listing by function on SQLite: ``list_tasks(func=...)`` and ``task_functions`` read the
``omniq_tasks_func_queue`` index (migration 5), so the dashboard's function filter costs what
any other page does, whatever the store's size.

That index holds (function, queue, seq) and no status: a task's entry is written when it is
stored and left alone by its claim and its acknowledgement, which change only the status (with
the status in it, migration 4's index cost a drain about 5 µs of SQLite's work per task). A page
of one function therefore reads, per queue, one range of it from the cursor on. With a status
asked for, each queue is read one of two ways, chosen by the kept counts of that (queue, status):

- the status is rare in the queue (at most :data:`RARE_STATUS` tasks): its range of
  ``omniq_tasks_queue_status``, the function checked on each row, so at most that many rows;
- otherwise: the function's range, the status checked on each row, which stops as soon as the
  page is full (a status common in the queue is, as a rule, common among the function's tasks).

The one slow shape left is a status common in the queue but rare among many tasks of the
function in that queue (100,000 SUCCESS tasks of other functions and 100,000 PENDING tasks of
this one, asked for its few SUCCESS ones): the function's range is read until enough are found.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from omniq.models.task import Task, TaskStatus
from omniq.storage.base.listing import SupportsListing, cursor_gone
from omniq.storage.sqlite._component import SQLiteComponent
from omniq.storage.sqlite._rows import SEQ, SQL, Row

#: A status with at most this many tasks in a queue (its kept count) is listed through the
#: (queue, status) index, the function checked on each row: a bounded read of that many rows.
RARE_STATUS = 10_000


@functools.lru_cache(maxsize=16)
def by_func_sql(name: str, descending: bool, status: bool = False) -> str:
    """``func_range`` / ``status_func_range`` of queries.sql in one order (see there)."""
    return (
        SQL[name]
        .replace("{status}", "AND status = ?" if status else "")
        .replace("{cmp}", "<" if descending else ">")
        .replace("{dir}", "DESC" if descending else "ASC")
    )


class FunctionListing(SQLiteComponent, SupportsListing):
    """The function-name listing primitives of :class:`SupportsListing` on SQLite."""

    lists_by_function: ClassVar[bool] = True

    if TYPE_CHECKING:

        def _view(self, row: Row) -> Task: ...

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
        if limit == 0:
            return []
        project, want = self.project_name, offset + limit
        by_func = by_func_sql("func_range", descending, status is not None)
        by_status = by_func_sql("status_func_range", descending)

        def listing(raw: sqlite3.Connection) -> list[Row]:
            start = 2**63 - 1 if descending else -1
            if after is not None:
                found = raw.execute(SQL["seq_of"], (project, after)).fetchone()
                if found is None:
                    raise cursor_gone(after)
                start = found[0]
            # the (queue, status) pairs that have tasks, with how many: the kept counts
            counts: dict[str, int] = {}
            for q, st, n in raw.execute(SQL["stats"], (project,)):
                if (
                    n > 0
                    and (queue is None or q == queue)
                    and (status is None or st == status.value)
                ):
                    counts[q] = counts.get(q, 0) + n
            rows: list[Row] = []
            # per function and queue one range, then the merge
            for func in dict.fromkeys(funcs):
                for q, n in counts.items():
                    if status is None:
                        rows += raw.execute(by_func, (project, func, q, start, want)).fetchall()
                    elif n <= RARE_STATUS:
                        args = (project, q, status.value, start, func, want)
                        rows += raw.execute(by_status, args).fetchall()
                    else:
                        args = (project, func, q, start, status.value, want)
                        rows += raw.execute(by_func, args).fetchall()
            rows.sort(key=lambda r: r[SEQ], reverse=descending)
            return rows[offset:want]

        return [self._view(r) for r in await self.db.run(listing)]

    async def _task_functions(self, limit: int) -> list[str]:
        params = {"project": self.project_name, "limit": limit}
        rows = await self.db.run(lambda raw: raw.execute(SQL["task_functions"], params).fetchall())
        return [name for (name,) in rows]


__all__ = ["RARE_STATUS", "FunctionListing"]
