"""The memory result and event storages: dicts and a bounded deque, waiters as futures."""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import datetime
from typing import Any

from omniq._sync import SyncWrapper
from omniq.models.event import TaskEvent
from omniq.models.result import TaskResult
from omniq.storage.base import (
    BaseEventStorage,
    BaseResultStorage,
    EventQuery,
)


class AsyncMemoryResultStorage(BaseResultStorage):
    backend_name = "memory"
    is_local = True

    def __init__(self, *, name: str | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.name = name
        self._results: dict[str, tuple[datetime | None, bytes]] = {}
        self._latest: dict[str, str] = {}
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}

    async def _set_many(self, items: list[tuple[TaskResult, bytes]]) -> None:
        for result, payload in items:
            self._results[result.task_id] = (result.expires_at, payload)
            if result.schedule_id is not None:
                self._latest[result.schedule_id] = result.task_id
            for fut in self._waiters.pop(result.task_id, ()):
                if not fut.done():
                    fut.set_result(None)

    async def _get(self, task_id: str) -> TaskResult | None:
        stored = self._results.get(task_id)
        return None if stored is None else self.serializer.decode_result(stored[1], task_id)

    async def _wait_for(self, task_id: str, timeout: float | None) -> None:
        if task_id in self._results:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(task_id, [])
        waiters.append(fut)
        try:
            # asyncio.timeout, not 3.11's wait_for, which loses a cancel landing as the result
            # comes in
            async with asyncio.timeout(timeout):
                await fut
        except TimeoutError:
            pass
        finally:
            if fut in waiters:
                waiters.remove(fut)
            if not waiters:
                self._waiters.pop(task_id, None)

    async def _get_latest(self, schedule_id: str) -> TaskResult | None:
        task_id = self._latest.get(schedule_id)
        return None if task_id is None else await self.get(task_id)

    async def _delete(self, task_id: str) -> bool:
        return self._results.pop(task_id, None) is not None

    async def _cleanup(self, now: datetime) -> int:
        doomed = [k for k, (exp, _) in self._results.items() if exp is not None and exp <= now]
        for key in doomed:
            del self._results[key]
        return len(doomed)


class AsyncMemoryEventStorage(BaseEventStorage):
    backend_name = "memory"
    is_local = True

    def __init__(
        self, *, name: str | None = None, max_events: int = 100_000, **options: Any
    ) -> None:
        super().__init__(**options)
        self.name = name
        self._events: deque[TaskEvent] = deque(maxlen=max_events)

    async def _log_events(self, events: list[TaskEvent]) -> None:
        self._events.extend(events)

    async def _get_events(self, query: EventQuery) -> list[TaskEvent]:
        found = sorted(
            (e for e in self._events if query.matches(e)),
            key=lambda e: (e.timestamp, e.id),
            reverse=query.descending,
        )
        return found[query.offset : query.offset + query.limit]

    async def _cleanup_old_events(self, before: datetime) -> int:
        kept = [e for e in self._events if e.timestamp >= before]
        removed = len(self._events) - len(kept)
        self._events = deque(kept, maxlen=self._events.maxlen)
        return removed


class MemoryResultStorage(SyncWrapper, async_class=AsyncMemoryResultStorage):
    """Blocking API of :class:`AsyncMemoryResultStorage`."""


class MemoryEventStorage(SyncWrapper, async_class=AsyncMemoryEventStorage):
    """Blocking API of :class:`AsyncMemoryEventStorage`."""


__all__ = [
    "AsyncMemoryEventStorage",
    "AsyncMemoryResultStorage",
    "MemoryEventStorage",
    "MemoryResultStorage",
]
