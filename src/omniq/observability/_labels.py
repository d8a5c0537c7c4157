"""What a task is called in metrics and spans: its queue and its function reference (never its
arguments, which would make unbounded label sets and may hold secrets)."""

from __future__ import annotations

from datetime import datetime

from omniq._time import utcnow
from omniq.models.task import Task


def task_name(task: Task) -> str:
    return task.func


def queue_wait(task: Task, now: datetime | None = None) -> float:
    """Seconds the task waited to start: from the moment it could run (its ``eta`` for a delayed
    task or a retry, else its creation) to its claim; never negative (clocks of two hosts)."""
    ready = task.eta or task.created_at
    started = task.started_at or now or utcnow()
    return max(0.0, (started - ready).total_seconds())
