"""What a running worker publishes about itself, for ``omniq info`` and the dashboard.

Stored as plain JSON (``msgspec.json``) in the task-queue backend: it carries no code, so it is
never signed or pickled, and any tool can read it.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from omniq._time import as_utc, utcnow


class WorkerInfo(msgspec.Struct, kw_only=True):
    worker_id: str
    worker_type: str
    hostname: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: datetime
    last_seen: datetime = msgspec.field(default_factory=utcnow)
    state: str = "running"  # running | stopping
    processed: int = 0  # attempts that ended, whatever their outcome
    succeeded: int = 0
    failed: int = 0  # attempts that raised (retried or not)
    retried: int = 0
    dead: int = 0
    cancelled: int = 0
    lost: int = 0  # finished after the lease was lost: the acknowledgement was refused
    running: int = 0
    callback_errors: int = 0

    def __post_init__(self) -> None:
        self.started_at = as_utc(self.started_at)
        self.last_seen = as_utc(self.last_seen)

    @property
    def uptime(self) -> float:
        """Seconds between the worker's start and its last report."""
        return (self.last_seen - self.started_at).total_seconds()


__all__ = ["WorkerInfo"]
