"""Event storage: where lifecycle events are kept and queried.

A backend writes three primitives: ``_log_events``, ``_get_events`` (an :class:`EventQuery`; a
store that cannot push the filter down uses :meth:`EventQuery.matches`) and
``_cleanup_old_events``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from datetime import datetime

import msgspec

from omniq._time import as_utc
from omniq.models.event import EventType, TaskEvent
from omniq.storage.base.component import Component


class BaseEventStorage(Component):
    """Where lifecycle events are kept and queried."""

    async def log_event(self, event: TaskEvent) -> None:
        await self.log_events([event])

    async def log_events(self, events: Sequence[TaskEvent]) -> None:
        if events:
            await self._ensure()
            await self._log_events(list(events))

    async def get_events(
        self,
        task_id: str | None = None,
        event_type: EventType | str | Sequence[EventType | str] | None = None,
        queue: str | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
        *,
        schedule_id: str | None = None,
        descending: bool = False,
    ) -> list[TaskEvent]:
        """Events matching every given filter, oldest first (``descending=True``: newest first).
        ``start_time`` is inclusive, ``end_time`` exclusive."""
        types: list[EventType] | None
        if event_type is None:
            types = None
        elif isinstance(event_type, EventType | str):
            types = [EventType(event_type)]
        else:
            types = [EventType(t) for t in event_type]
        if limit < 0 or offset < 0:
            raise ValueError(f"limit and offset must be >= 0, got {limit!r}, {offset!r}")
        await self._ensure()
        return await self._get_events(
            EventQuery(
                task_id=task_id,
                event_types=types,
                queue=queue,
                schedule_id=schedule_id,
                start_time=as_utc(start_time) if start_time else None,
                end_time=as_utc(end_time) if end_time else None,
                limit=limit,
                offset=offset,
                descending=descending,
            )
        )

    async def cleanup_old_events(self, before: datetime) -> int:
        """Deletes events older than ``before``; returns how many."""
        await self._ensure()
        return await self._cleanup_old_events(as_utc(before))

    @abstractmethod
    async def _log_events(self, events: list[TaskEvent]) -> None: ...

    @abstractmethod
    async def _get_events(self, query: EventQuery) -> list[TaskEvent]: ...

    @abstractmethod
    async def _cleanup_old_events(self, before: datetime) -> int: ...


class EventQuery(msgspec.Struct, kw_only=True):
    task_id: str | None = None
    event_types: list[EventType] | None = None
    queue: str | None = None
    schedule_id: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    limit: int = 100
    offset: int = 0
    descending: bool = False

    def matches(self, event: TaskEvent) -> bool:
        """The filter in Python, for stores that cannot push it down (memory, plain files)."""
        return (
            (self.task_id is None or event.task_id == self.task_id)
            and (self.event_types is None or event.event_type in self.event_types)
            and (self.queue is None or event.queue_name == self.queue)
            and (self.schedule_id is None or event.schedule_id == self.schedule_id)
            and (self.start_time is None or event.timestamp >= self.start_time)
            and (self.end_time is None or event.timestamp < self.end_time)
        )
