"""Listing by function on PostgreSQL: ``list_tasks(func=...)`` and ``task_functions`` read
``tasks_func_idx`` (migration 0005), so the dashboard's function filter costs what any other page
does, whatever the store's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from omniq.models.task import Task, TaskStatus
from omniq.storage.base.listing import SupportsListing, cursor_gone
from omniq.storage.postgres._component import PgComponent


class PgFunctionListing(PgComponent, SupportsListing):
    """The function-name listing primitives of :class:`SupportsListing` on PostgreSQL."""

    lists_by_function: ClassVar[bool] = True
    _sql: dict[str, str]

    if TYPE_CHECKING:

        def _view(self, row: Any) -> Task: ...

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
        start = None
        if after is not None:
            start = await self.pool.fetchval(self._sql["seq_of"], self.project_name, after)
            if start is None:
                raise cursor_gone(after)
        rows = await self.pool.fetch(
            self._sql["list_tasks_func_desc" if descending else "list_tasks_func"],
            self.project_name,
            queue,
            status.value if status is not None else None,
            start,
            offset + limit,
            limit,
            offset,
            list(dict.fromkeys(funcs)),
        )
        return [self._view(r) for r in rows]

    async def _task_functions(self, limit: int) -> list[str]:
        rows = await self.pool.fetch(self._sql["task_functions"], self.project_name, limit)
        return [row["name"] for row in rows]


__all__ = ["PgFunctionListing"]
