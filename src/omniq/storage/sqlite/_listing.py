"""Listing by function on SQLite: ``list_tasks(func=...)`` and ``task_functions`` read the
``omniq_tasks_func`` index (migration 4), so the dashboard's function filter costs what any other
page does, whatever the store's size.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from omniq.models.task import Task, TaskStatus
from omniq.storage.base.listing import SupportsListing, cursor_gone
from omniq.storage.sqlite._component import SQLiteComponent
from omniq.storage.sqlite._db import FILES

Row = tuple[Any, ...]


class FunctionListing(SQLiteComponent, SupportsListing):
    """The function-name listing primitives of :class:`SupportsListing` on SQLite."""

    lists_by_function: ClassVar[bool] = True
    #: The task columns every read returns, from ``omniq_tasks AS t`` (set by the queue class,
    #: whose ``_view`` reads them by position).
    _TASK_COLUMNS: ClassVar[str]

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
        groups, params = "", []
        if queue is not None:
            groups += " AND g.queue = ?"
            params.append(queue)
        if status is not None:
            groups += " AND g.status = ?"
            params.append(status.value)
        sql = (
            FILES.queries["list_tasks_func"]
            .replace("{t_columns}", self._TASK_COLUMNS)
            .replace("{groups}", groups)
            .replace("{cmp}", "<" if descending else ">")
            .replace("{dir}", "DESC" if descending else "ASC")
        )
        project = self.project_name

        def listing(raw: sqlite3.Connection) -> list[Row]:
            start = 2**63 - 1 if descending else -1
            if after is not None:
                found = raw.execute(FILES.queries["seq_of"], (project, after)).fetchone()
                if found is None:
                    raise cursor_gone(after)
                start = found[0]
            rows: list[Row] = []
            # one statement per function: each reads its own index ranges, then the merge
            for func in dict.fromkeys(funcs):
                args = [project, *params, func, start, offset + limit, offset + limit, 0]
                rows += raw.execute(sql, args).fetchall()
            rows.sort(key=lambda r: r[0], reverse=descending)  # r[0]: seq
            return rows[offset : offset + limit]

        return [self._view(r) for r in await self.db.run(listing)]

    async def _task_functions(self, limit: int) -> list[str]:
        params = {"project": self.project_name, "limit": limit}
        rows = await self.db.run(
            lambda raw: raw.execute(FILES.queries["task_functions"], params).fetchall()
        )
        return [name for (name,) in rows]


__all__ = ["FunctionListing"]
