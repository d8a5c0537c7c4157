"""Task lifecycle events. Stored as plain columns/JSON, never pickled, so any tool can query them."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from omniq._ids import new_id
from omniq._time import as_utc, utcnow

if TYPE_CHECKING:
    from omniq.models.task import Task


class EventType(enum.StrEnum):
    ENQUEUED = "enqueued"
    WAITING = "waiting"
    EXECUTING = "executing"
    COMPLETED = "completed"
    ERROR = "error"
    RETRY = "retry"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    DEAD = "dead"
    REQUEUED = "requeued"
    LEASE_EXPIRED = "lease_expired"
    DEPENDENCY_FAILED = "dependency_failed"
    SCHEDULED = "scheduled"
    SCHEDULE_PAUSED = "schedule_paused"
    SCHEDULE_RESUMED = "schedule_resumed"

    # seeds/004 spells it COMPLETE; ARCHITECTURE 12.5 keeps both names.
    COMPLETE = "completed"


class TaskEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    task_id: str
    event_type: EventType
    timestamp: datetime = msgspec.field(default_factory=utcnow)
    id: str = msgspec.field(default_factory=new_id)
    queue_name: str | None = None
    worker_id: str | None = None
    schedule_id: str | None = None
    func: str | None = None
    attempt: int | None = None
    details: dict[str, Any] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.timestamp = as_utc(self.timestamp)

    @classmethod
    def for_task(
        cls, task: Task, event_type: EventType, *, worker_id: str | None = None, **details: Any
    ) -> TaskEvent:
        """The event of a task's transition; details that are None are left out."""
        return cls(
            task_id=task.id,
            event_type=event_type,
            queue_name=task.queue_name,
            worker_id=worker_id or task.worker_id,
            schedule_id=task.schedule_id,
            func=task.func,
            attempt=task.attempts,
            details={k: v for k, v in details.items() if v is not None},
        )


__all__ = ["EventType", "TaskEvent"]
