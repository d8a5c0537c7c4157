"""Listing on PostgreSQL: a page of tasks reads one index range per (queue, status) from its
cursor (``tasks_list_idx``; with functions, ``tasks_func_idx`` of migration 0005), so a deep page,
or a page of one function, costs what the first page does, whatever the store's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar

from omniq.models.task import Task, TaskStatus
from omniq.storage.base.listing import SupportsListing, cursor_gone
from omniq.storage.postgres._component import PgComponent
from omniq.storage.postgres._sql import queries


@cache
def page_sql(by_func: bool, descending: bool) -> str:
    """The listing template of ``queries.sql`` in one of its four shapes (with or without the
    function filter, oldest or newest first), filled once: one statement, not four near-copies."""
    return (
        queries()["list_tasks"]
        .replace("{funcs}", "CROSS JOIN unnest($8::text[]) AS f(func)" if by_func else "")
        .replace("{func_match}", "AND x.func = f.func " if by_func else "")
        .replace("{cmp}", "<" if descending else ">")
        .replace("{start}", "9223372036854775807" if descending else "-1")
        .replace("{dir}", "DESC" if descending else "ASC")
    )


class PgListing(PgComponent, SupportsListing):
    """The listing primitives of :class:`SupportsListing` on PostgreSQL."""

    lists_by_function: ClassVar[bool] = True
    _sql: dict[str, str]

    if TYPE_CHECKING:

        def _view(self, row: Any) -> Task: ...

    async def _list_tasks(
        self,
        queue: str | None,
        status: TaskStatus | None,
        limit: int,
        offset: int,
        after: str | None = None,
        descending: bool = False,
    ) -> list[Task]:
        return await self._page(False, queue, status, limit, offset, after, descending)

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
        names = list(dict.fromkeys(funcs))
        return await self._page(True, queue, status, limit, offset, after, descending, names)

    async def _page(
        self,
        by_func: bool,
        queue: str | None,
        status: TaskStatus | None,
        limit: int,
        offset: int,
        after: str | None,
        descending: bool,
        *more: Any,
    ) -> list[Task]:
        """One page (of some functions when ``by_func``) from the cursor task's seq."""
        if limit == 0:
            return []
        start = None
        if after is not None:
            start = await self.pool.fetchval(self._sql["seq_of"], self.project_name, after)
            if start is None:
                raise cursor_gone(after)
        rows = await self.pool.fetch(
            page_sql(by_func, descending),
            self.project_name,
            queue,
            status.value if status is not None else None,
            start,
            offset + limit,
            limit,
            offset,
            *more,
        )
        return [self._view(r) for r in rows]

    async def _task_functions(self, limit: int) -> list[str]:
        rows = await self.pool.fetch(self._sql["task_functions"], self.project_name, limit)
        return [row["name"] for row in rows]


__all__ = ["PgListing"]
