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
    #: the state of each of its stores' circuit breakers, by role (queue, results, events):
    #: "closed", or "open" / "half_open" while that store is away
    breakers: dict[str, str] = msgspec.field(default_factory=dict)
    #: finished tasks whose results and acknowledgements wait for their store to come back
    buffered: int = 0

    @property
    def stores_away(self) -> list[str]:
        """The roles whose breaker is open (``["results"]``): stores this worker cannot reach."""
        return [role for role, state in self.breakers.items() if state != "closed"]

    def __post_init__(self) -> None:
        self.started_at = as_utc(self.started_at)
        self.last_seen = as_utc(self.last_seen)

    @property
    def uptime(self) -> float:
        """Seconds between the worker's start and its last report."""
        return (self.last_seen - self.started_at).total_seconds()


__all__ = ["WorkerInfo"]
