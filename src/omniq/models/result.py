"""Task results: what a finished task leaves behind for ``get_result``."""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec

from omniq._time import as_timedelta, as_utc, as_utc_opt, utcnow
from omniq.exceptions import TaskCancelledError, TaskExpiredError, TaskFailedError

if TYPE_CHECKING:
    from omniq.models.task import Task


class ResultStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    # seeds speak of "failure" too
    FAILURE = "error"

    @property
    def is_final(self) -> bool:
        return self in (
            ResultStatus.SUCCESS,
            ResultStatus.ERROR,
            ResultStatus.CANCELLED,
            ResultStatus.EXPIRED,
        )


class TaskResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The outcome of a task. ``ttl`` (a timedelta or seconds) sets ``expires_at`` when not given."""

    task_id: str
    status: ResultStatus = ResultStatus.SUCCESS
    result: Any = None
    error: str | None = None
    error_type: str | None = None
    traceback: str | None = None
    queue_name: str | None = None
    schedule_id: str | None = None
    worker_id: str | None = None
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime = msgspec.field(default_factory=utcnow)
    ttl: timedelta | None = None
    expires_at: datetime | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ttl = as_timedelta(self.ttl, name="ttl")
        self.started_at = as_utc_opt(self.started_at)
        self.finished_at = as_utc(self.finished_at)
        self.expires_at = as_utc_opt(self.expires_at)
        if self.expires_at is None and self.ttl is not None:
            self.expires_at = self.finished_at + self.ttl

    @classmethod
    def for_task(
        cls,
        task: Task,
        status: ResultStatus,
        *,
        result: Any = None,
        error: str | None = None,
        error_type: str | None = None,
        traceback: str | None = None,
        worker_id: str | None = None,
    ) -> TaskResult:
        """A task's outcome, carrying its queue, schedule, attempts and result TTL."""
        return cls(
            task_id=task.id,
            status=status,
            result=result,
            error=error,
            error_type=error_type,
            traceback=traceback,
            queue_name=task.queue_name,
            schedule_id=task.schedule_id,
            worker_id=worker_id or task.worker_id,
            attempts=task.attempts,
            started_at=task.started_at,
            ttl=timedelta(seconds=task.result_ttl) if task.result_ttl is not None else None,
        )

    @property
    def success(self) -> bool:
        return self.status is ResultStatus.SUCCESS

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or utcnow())

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


def result_value(task_id: str, result: TaskResult | None) -> Any:
    """What ``get_result`` returns: the value on success, None when there is no result yet; a
    failed, cancelled or expired task raises, so an error is never mistaken for a value."""
    if result is None:
        return None
    if result.status is ResultStatus.SUCCESS:
        return result.result
    if result.status is ResultStatus.CANCELLED:
        reason = f": {result.error}" if result.error and result.error != "cancelled" else ""
        raise TaskCancelledError(f"task {task_id!r} was cancelled{reason}")
    if result.status is ResultStatus.EXPIRED:
        raise TaskExpiredError(f"task {task_id!r} expired before it started")
    if result.status is ResultStatus.ERROR:
        raise TaskFailedError(task_id, result.error_type, result.error, result.traceback)
    return None


__all__ = ["ResultStatus", "TaskResult", "result_value"]
