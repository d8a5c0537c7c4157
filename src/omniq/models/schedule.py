"""Schedules: cron, interval or one-shot timings that turn into tasks, with pause/resume state.

A schedule lives in the task-queue backend. ``next_run_at`` is the compare-and-set token that makes
each occurrence enqueue exactly once however many scheduler loops run.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import msgspec

from omniq._ids import new_id
from omniq._time import as_utc, as_utc_opt, utcnow
from omniq.models.task import DEFAULT_QUEUE, func_ref


class ScheduleState(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    FINISHED = "finished"


class MissedRunPolicy(enum.StrEnum):
    RUN_ONCE = "run_once"  # occurrences missed while nothing ran collapse into one run
    SKIP = "skip"  # missed occurrences are dropped; the next one on the timeline runs
    RUN_ALL = "run_all"  # every missed occurrence is enqueued


class Schedule(msgspec.Struct, kw_only=True, omit_defaults=True):
    func: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = msgspec.field(default_factory=dict)
    id: str = msgspec.field(default_factory=new_id)
    queue_name: str = DEFAULT_QUEUE
    cron: str | None = None
    interval: float | None = None  # seconds
    run_at: datetime | None = None
    timezone: str = "UTC"
    start_at: datetime | None = None
    end_at: datetime | None = None
    max_runs: int | None = None
    missed_policy: MissedRunPolicy = MissedRunPolicy.RUN_ONCE
    state: ScheduleState = ScheduleState.ACTIVE
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None
    last_task_id: str | None = None
    run_count: int = 0
    created_at: datetime = msgspec.field(default_factory=utcnow)
    # options copied onto every task the schedule enqueues (priority, max_retries, timeout, ...)
    task_options: dict[str, Any] = msgspec.field(default_factory=dict)
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    func_obj: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.func, str):
            if not callable(self.func):
                raise TypeError(f"Schedule func must be a callable or a name, got {self.func!r}")
            self.func, self.func_obj = func_ref(self.func)
        if not isinstance(self.args, tuple):
            self.args = tuple(self.args)
        kinds = [k for k in ("cron", "interval", "run_at") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                f"a schedule needs exactly one of cron, interval or run_at, got {kinds or 'none'}"
            )
        if self.interval is not None and self.interval <= 0:
            raise ValueError(f"schedule interval must be positive, got {self.interval!r} seconds")
        self.created_at = as_utc(self.created_at)
        self.run_at = as_utc_opt(self.run_at)
        self.start_at = as_utc_opt(self.start_at)
        self.end_at = as_utc_opt(self.end_at)
        self.next_run_at = as_utc_opt(self.next_run_at)
        self.last_run_at = as_utc_opt(self.last_run_at)

    @property
    def is_paused(self) -> bool:
        return self.state is ScheduleState.PAUSED

    @property
    def is_active(self) -> bool:
        return self.state is ScheduleState.ACTIVE


__all__ = ["MissedRunPolicy", "Schedule", "ScheduleState"]
