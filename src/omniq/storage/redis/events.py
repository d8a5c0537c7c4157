"""Redis event storage: one hash per event, sorted sets by timestamp as indexes.

Keys, under ``E = <events_prefix>:{<project>}``: ``E:event:<id>`` (the event as JSON plus the
fields queries filter on), ``E:all`` and ``E:task:<task_id>``, ``E:type:<type>``,
``E:queue:<queue>``, ``E:sched:<schedule_id>``, each scored by the timestamp in microseconds.
A query walks the most selective index in time order and filters the rest inside one script.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from omniq._sync import SyncWrapper
from omniq.models.event import TaskEvent
from omniq.storage.base import BaseEventStorage, EventQuery
from omniq.storage.redis._conn import (
    RedisComponent,
    Script,
    key_base,
    register,
    split_connection_options,
    to_us,
)

_CHUNK = 1000


class AsyncRedisEventStorage(RedisComponent, BaseEventStorage):
    """Lifecycle events in Redis, queryable by task, type, queue, schedule and time.

    Accepts every option of :class:`omniq.models.config.RedisConfig` (the connection or
    ``url``, ``events_prefix``; the other prefixes are not used here) and ``project_name``.
    """

    backend_name = "redis"
    is_local = False

    def __init__(
        self,
        *,
        events_prefix: str = "omniq:events",
        tasks_prefix: str = "omniq:tasks",
        results_prefix: str = "omniq:results",
        **options: Any,
    ) -> None:
        connection, rest = split_connection_options(options)
        super().__init__(**rest)
        self._init_redis(connection)
        self.events_prefix = events_prefix
        self._base = key_base(events_prefix, self.project_name, option="events_prefix")
        self._scripts: dict[str, Script] = {}
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(TaskEvent)

    def __repr__(self) -> str:
        return (
            f"AsyncRedisEventStorage(server={self._conn.describe()!r}, "
            f"project_name={self.project_name!r})"
        )

    async def _connect(self) -> None:
        client = await self._open_client()
        self._scripts = {
            name: register(client, name)
            for name in ("events_log", "events_query", "events_cleanup")
        }

    async def _close(self) -> None:
        await self._close_client()

    async def _health(self) -> dict[str, Any]:
        return await self._redis_health()

    async def _log_events(self, events: list[TaskEvent]) -> None:
        for start in range(0, len(events), _CHUNK):
            chunk = events[start : start + _CHUNK]
            args: list[Any] = [len(chunk)]
            for e in chunk:
                args += (
                    e.id,
                    to_us(e.timestamp),
                    e.task_id,
                    e.event_type.value,
                    e.queue_name or "",
                    e.schedule_id or "",
                    self._encoder.encode(e),
                )
            await self._scripts["events_log"](keys=[self._base], args=args)

    async def _get_events(self, query: EventQuery) -> list[TaskEvent]:
        args: list[Any] = [
            query.task_id or "",
            query.schedule_id or "",
            query.queue or "",
            to_us(query.start_time) if query.start_time is not None else "-inf",
            f"({to_us(query.end_time)}" if query.end_time is not None else "+inf",
            query.offset,
            query.limit,
            "1" if query.descending else "0",
            *(t.value for t in query.event_types or ()),
        ]
        found = await self._scripts["events_query"](keys=[self._base], args=args)
        return [self._decoder.decode(j) for j in found]

    async def _cleanup_old_events(self, before: datetime) -> int:
        total = 0
        while True:
            count = int(
                await self._scripts["events_cleanup"](
                    keys=[self._base], args=[f"({to_us(before)}", _CHUNK]
                )
            )
            total += count
            if count < _CHUNK:
                return total


class RedisEventStorage(SyncWrapper, async_class=AsyncRedisEventStorage):
    """Blocking API of :class:`AsyncRedisEventStorage`."""


__all__ = ["AsyncRedisEventStorage", "RedisEventStorage"]
