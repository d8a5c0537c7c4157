"""Schedules: when their occurrences fall, and the loop that turns due occurrences into tasks
(ARCHITECTURE section 7).

Exactly once per occurrence, however many scheduler loops run: each occurrence becomes a task with a
deterministic id (``<schedule id>@<occurrence>``), enqueued *before* the schedule is advanced by a
compare-and-set on ``next_run_at``. Two loops racing on one occurrence enqueue the same id (the
second enqueue is a no-op) and only one advance wins; a loop that dies between the two steps leaves
the occurrence due, and the next loop's enqueue of the same id is again a no-op.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from omniq._aio import cancel_and_wait, idle
from omniq._time import utcnow
from omniq.config import get_logger
from omniq.models.schedule import MissedRunPolicy, Schedule, ScheduleState
from omniq.models.task import Task
from omniq.storage._breaker import away
from omniq.storage.base import BaseTaskQueue

log = get_logger("scheduler")


def _croniter() -> Any:
    """croniter, imported by the first cron schedule: not at every worker's start (tens of ms)."""
    from croniter import croniter

    return croniter


def validate_timing(cron: str | None, interval: float | None, timezone: str) -> None:
    """Refuses a bad cron string, a non-positive interval or an unknown time zone, naming it."""
    if cron is not None and not (isinstance(cron, str) and _croniter().is_valid(cron)):
        raise ValueError(f"invalid cron expression {cron!r}")
    if interval is not None and interval <= 0:
        raise ValueError(f"schedule interval must be positive, got {interval!r} seconds")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"unknown time zone {timezone!r}") from None


def next_occurrence(schedule: Schedule, after: datetime) -> datetime | None:
    """The first occurrence strictly after ``after``, or None when the schedule is over.

    Cron runs on the wall clock of the schedule's time zone: a time skipped by a spring-forward
    change runs once at the first valid time after it; a time repeated by a fall-back change runs
    once, not twice.
    """
    if schedule.max_runs is not None and schedule.run_count >= schedule.max_runs:
        return None
    start = schedule.start_at
    if start is not None and after < start:
        after = start - timedelta(microseconds=1)
    nxt: datetime | None
    if schedule.run_at is not None:
        nxt = schedule.run_at if schedule.run_count == 0 and schedule.run_at > after else None
    elif schedule.interval is not None:
        anchor = start or schedule.created_at
        step = timedelta(seconds=schedule.interval)
        if after < anchor:
            nxt = anchor
        else:
            periods = (after - anchor) // step + 1
            nxt = anchor + periods * step
    else:
        assert schedule.cron is not None
        tz = ZoneInfo(schedule.timezone)
        local_after = after.astimezone(tz)
        it = _croniter()(schedule.cron, local_after)
        candidate: datetime = it.get_next(datetime)
        while candidate.replace(tzinfo=None) == local_after.replace(tzinfo=None):
            candidate = it.get_next(datetime)  # the repeated hour of a fall-back day
        nxt = candidate.astimezone(after.tzinfo)
    if nxt is not None and schedule.end_at is not None and nxt > schedule.end_at:
        return None
    return nxt


def occurrence_task(schedule: Schedule, occurrence: datetime) -> Task:
    """The task of one occurrence; its id is derived from the occurrence, which makes enqueueing
    it idempotent."""
    options = dict(schedule.task_options)
    ttl = options.pop("ttl", None)  # a TTL counts from each occurrence, not from scheduling
    task = Task(
        func=schedule.func,
        args=schedule.args,
        kwargs=dict(schedule.kwargs),
        id=f"{schedule.id}@{occurrence.strftime('%Y%m%dT%H%M%S.%fZ')}",
        queue_name=schedule.queue_name,
        schedule_id=schedule.id,
        expires_at=occurrence + timedelta(seconds=ttl) if ttl is not None else None,
        metadata={**schedule.metadata, "occurrence": occurrence.isoformat()},
        **options,
    )
    task.func_obj = schedule.func_obj
    return task


class AsyncScheduler:
    """Enqueues due occurrences of the schedules stored in ``queue``. Any number may run."""

    def __init__(self, queue: BaseTaskQueue, *, max_sleep: float = 1.0) -> None:
        self.queue = queue
        self.max_sleep = max_sleep
        self._runner: asyncio.Task[None] | None = None

    async def tick(self, now: datetime | None = None) -> list[str]:
        """Enqueues every occurrence that is due now; returns the ids of the tasks it enqueued
        (an id another loop already enqueued is included once the advance is won here)."""
        now = now or utcnow()
        enqueued: list[str] = []
        for schedule in await self.queue.claim_due_schedules(now):
            task_id = await self._fire(schedule, now)
            if task_id is not None:
                enqueued.append(task_id)
        return enqueued

    async def _fire(self, schedule: Schedule, now: datetime) -> str | None:
        occurrence = schedule.next_run_at
        assert occurrence is not None
        policy = schedule.missed_policy
        late = now - occurrence
        skip = policy is MissedRunPolicy.SKIP and late > timedelta(
            seconds=max(1.0, self.max_sleep * 2)
        )
        task_id = None
        if not skip:
            task = occurrence_task(schedule, occurrence)
            # enqueue_many, not enqueue: a stored schedule is no instruction to this process's
            # workers (omniq.registry), so its function is not marked as enqueued here
            (task_id,) = await self.queue.enqueue_many([task])
        runs = schedule.run_count + (0 if skip else 1)
        advanced = msgspec.structs.replace(schedule, run_count=runs)
        after = occurrence if policy is MissedRunPolicy.RUN_ALL else max(now, occurrence)
        nxt = next_occurrence(advanced, after)
        changes: dict[str, Any] = {"next_run_at": nxt, "run_count": runs}
        if not skip:
            changes.update(last_run_at=now, last_task_id=task_id)
        if nxt is None:
            changes["state"] = ScheduleState.FINISHED
        won = await self.queue.advance_schedule(schedule.id, occurrence, changes)
        return task_id if won else None

    async def run(self) -> None:
        """Ticks until cancelled; a failing tick is logged and the loop carries on."""
        while True:
            pause = self.max_sleep
            try:
                await self.tick()
                pause = await self._until_next_due(pause)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                breaker = away(self.queue)
                if breaker is None:
                    log.warning("scheduler tick failed (%s: %s); retrying", type(exc).__name__, exc)
                else:  # its breaker logged the outage once: wait for it quietly
                    await breaker.wait_ready(self.max_sleep)
                    continue
            await idle(pause)

    async def _until_next_due(self, cap: float) -> float:
        """Sleeps until the earliest occurrence, at most ``cap`` (a schedule saved meanwhile is
        seen within ``cap``)."""
        active = await self.queue.list_schedules(ScheduleState.ACTIVE)
        due = [s.next_run_at for s in active if s.next_run_at is not None]
        if not due:
            return cap
        return max(0.0, min(cap, (min(due) - utcnow()).total_seconds()))

    def start(self) -> None:
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(
                self.run(), name="omniq-scheduler"
            )

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await cancel_and_wait(runner)


__all__ = ["AsyncScheduler", "next_occurrence", "occurrence_task", "validate_timing"]
