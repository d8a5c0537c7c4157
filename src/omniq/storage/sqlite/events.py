"""SQLite event storage: plain columns plus JSON details, one index per ``get_events`` filter."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

import msgspec

from omniq._sync import SyncWrapper
from omniq.models.event import EventType, TaskEvent
from omniq.storage.base import BaseEventStorage, EventQuery
from omniq.storage.sqlite._component import SQLiteComponent
from omniq.storage.sqlite._db import from_us, to_us
from omniq.storage.sqlite._schema import FILES

SQL = FILES.queries

_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder(dict[str, Any]).decode


class AsyncSQLiteEventStorage(SQLiteComponent, BaseEventStorage):
    """Task events in a SQLite file; readable with any SQLite tool (``SELECT * FROM omniq_events``)."""

    async def _log_events(self, events: list[TaskEvent]) -> None:
        rows = [
            (
                self.project_name,
                e.id,
                e.task_id,
                e.event_type.value,
                to_us(e.timestamp),
                e.queue_name,
                e.worker_id,
                e.schedule_id,
                e.func,
                e.attempt,
                _json_encode(e.details).decode(),
            )
            for e in events
        ]
        await self.db.write(lambda raw: raw.executemany(SQL["insert_event"], rows))

    async def _get_events(self, query: EventQuery) -> list[TaskEvent]:
        where = ["project = ?"]
        params: list[Any] = [self.project_name]
        if query.task_id is not None:
            where.append("task_id = ?")
            params.append(query.task_id)
        if query.event_types is not None:
            if not query.event_types:
                return []
            where.append(f"event_type IN ({', '.join('?' * len(query.event_types))})")
            params.extend(t.value for t in query.event_types)
        if query.queue is not None:
            where.append("queue = ?")
            params.append(query.queue)
        if query.schedule_id is not None:
            where.append("schedule_id IS NOT NULL AND schedule_id = ?")
            params.append(query.schedule_id)
        if query.start_time is not None:
            where.append("timestamp >= ?")
            params.append(to_us(query.start_time))
        if query.end_time is not None:
            where.append("timestamp < ?")
            params.append(to_us(query.end_time))
        order = "DESC" if query.descending else "ASC"
        sql = SQL["get_events"].replace("{where}", " AND ".join(where)).replace("{order}", order)
        params += [query.limit, query.offset]
        rows = await self.db.run(lambda raw: raw.execute(sql, params).fetchall())
        return [_event(row) for row in rows]

    async def _cleanup_old_events(self, before: datetime) -> int:
        def sweep(raw: sqlite3.Connection) -> int:
            cur = raw.execute(SQL["delete_old_events"], (self.project_name, to_us(before)))
            return cur.rowcount

        return await self.db.run(sweep)


def _event(row: tuple[Any, ...]) -> TaskEvent:
    event_id, task_id, event_type, ts, queue, worker_id, schedule_id, func, attempt, details = row
    timestamp = from_us(ts)
    assert timestamp is not None
    return TaskEvent(
        id=event_id,
        task_id=task_id,
        event_type=EventType(event_type),
        timestamp=timestamp,
        queue_name=queue,
        worker_id=worker_id,
        schedule_id=schedule_id,
        func=func,
        attempt=attempt,
        details=_json_decode(details),
    )


class SQLiteEventStorage(SyncWrapper, async_class=AsyncSQLiteEventStorage):
    """Blocking API of :class:`AsyncSQLiteEventStorage`."""


__all__ = ["AsyncSQLiteEventStorage", "SQLiteEventStorage"]
