"""PostgreSQL event storage: one row per lifecycle event, in plain columns and jsonb details, with
an index behind every ``get_events`` filter."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from omniq._sync import SyncWrapper
from omniq.models.event import EventType, TaskEvent
from omniq.storage.base import BaseEventStorage, EventQuery
from omniq.storage.postgres._component import PgComponent
from omniq.storage.postgres._sql import queries

_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder(dict[str, Any]).decode


class AsyncPostgresEventStorage(PgComponent, BaseEventStorage):
    """Events in PostgreSQL; options as for :class:`AsyncPostgresQueue` (connection ones)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._sql = queries()

    async def _log_events(self, events: list[TaskEvent]) -> None:
        await self.pool.execute(
            self._sql["log_events"],
            self.project_name,
            [e.id for e in events],
            [e.task_id for e in events],
            [e.event_type.value for e in events],
            [e.timestamp for e in events],
            [e.queue_name for e in events],
            [e.worker_id for e in events],
            [e.schedule_id for e in events],
            [e.func for e in events],
            [e.attempt for e in events],
            [_json_encode(e.details).decode() for e in events],
        )

    async def _get_events(self, query: EventQuery) -> list[TaskEvent]:
        # Only these fixed fragments ever reach the SQL text; values travel as parameters.
        args: list[Any] = [self.project_name, query.limit, query.offset]
        where = []

        def param(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if query.task_id is not None:
            where.append(f"task_id = {param(query.task_id)}")
        if query.event_types is not None:
            where.append(f"event_type = ANY({param([t.value for t in query.event_types])}::text[])")
        if query.queue is not None:
            where.append(f"queue = {param(query.queue)}")
        if query.schedule_id is not None:
            where.append(f"schedule_id = {param(query.schedule_id)}")
        if query.start_time is not None:
            where.append(f"ts >= {param(query.start_time)}")
        if query.end_time is not None:
            where.append(f"ts < {param(query.end_time)}")
        sql = self._sql["get_events"].format(
            where="".join(f" AND {w}" for w in where),
            order="DESC" if query.descending else "ASC",
        )
        rows = await self.pool.fetch(sql, *args)
        return [
            TaskEvent(
                id=r["id"],
                task_id=r["task_id"],
                event_type=EventType(r["event_type"]),
                timestamp=r["ts"],
                queue_name=r["queue"],
                worker_id=r["worker_id"],
                schedule_id=r["schedule_id"],
                func=r["func"],
                attempt=r["attempt"],
                details=_json_decode(r["details"]),
            )
            for r in rows
        ]

    async def _cleanup_old_events(self, before: datetime) -> int:
        count: int = await self.pool.fetchval(
            self._sql["cleanup_events"], self.project_name, before
        )
        return count


class PostgresEventStorage(SyncWrapper, async_class=AsyncPostgresEventStorage):
    """Blocking API of :class:`AsyncPostgresEventStorage`."""


__all__ = ["AsyncPostgresEventStorage", "PostgresEventStorage"]
