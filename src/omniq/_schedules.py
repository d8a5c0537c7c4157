"""The façade's schedules: ``schedule`` stores a cron, interval or one-shot schedule built from
a task template; the rest hands schedule ids to the task queue's schedules capability."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from omniq._sync import unwrap
from omniq._time import as_seconds, utcnow
from omniq.models.schedule import MissedRunPolicy, Schedule, ScheduleState
from omniq.queue.scheduler import next_occurrence, validate_timing
from omniq.storage.base import BaseTaskQueue

_TICK = timedelta(microseconds=1)

#: the task options a schedule keeps for every task it enqueues
SCHEDULE_TASK_FIELDS = (
    "priority",
    "max_retries",
    "retry_delay",
    "retry_backoff",
    "retry_max_delay",
    "retry_jitter",
    "retry_on",
    "timeout",
    "result_ttl",
)


class ScheduleMethods:
    """Mixed into ``AsyncOmniQ``: everything about schedules."""

    task_queue: BaseTaskQueue

    async def schedule(
        self,
        func: Callable[..., Any] | str,
        *,
        cron: str | None = None,
        interval: timedelta | float | None = None,
        run_at: datetime | None = None,
        run_in: timedelta | float | None = None,
        timezone: str = "UTC",
        start_at: datetime | None = None,
        end_at: datetime | None = None,
        max_runs: int | None = None,
        missed_policy: MissedRunPolicy | str = MissedRunPolicy.RUN_ONCE,
        schedule_id: str | None = None,
        ttl: timedelta | float | None = None,
        **task_options: Any,
    ) -> str:
        """Stores a cron, interval or one-shot schedule and returns its id. Task options
        (``args``, ``kwargs``, ``func_args``, ``queue_name``, ``priority``, ``max_retries``,
        ``timeout``, ``result_ttl``...) apply to every task it enqueues; ``ttl`` counts from each
        occurrence. A bad cron string, interval or time zone is refused here, naming it.

        Its keyword list is the documented API (README, seeds), so it stays spelled out here,
        the one method over ten parameters; everything behind it takes grouped values."""
        interval_s = as_seconds(interval, name="interval") if interval is not None else None
        if run_in is not None:
            if run_at is not None:
                raise TypeError("give run_at or run_in, not both")
            delay = as_seconds(run_in, name="run_in") or 0.0
            run_at = utcnow() + timedelta(seconds=delay)
        validate_timing(cron, interval_s, timezone)
        if max_runs is not None and (isinstance(max_runs, bool) or max_runs < 1):
            raise ValueError(f"max_runs must be a positive int, got {max_runs!r}")
        template = self.task_queue.build_task(unwrap(func), ttl=None, **task_options)
        options = {k: getattr(template, k) for k in SCHEDULE_TASK_FIELDS}
        if ttl is not None:
            options["ttl"] = as_seconds(ttl, name="ttl")
        schedule = Schedule(
            func=template.func,
            args=template.args,
            kwargs=template.kwargs,
            queue_name=template.queue_name,
            cron=cron,
            interval=interval_s,
            run_at=run_at,
            timezone=timezone,
            start_at=start_at,
            end_at=end_at,
            max_runs=max_runs,
            missed_policy=MissedRunPolicy(missed_policy),
            task_options=options,
            metadata=template.metadata,
        )
        if schedule_id is not None:
            schedule.id = schedule_id
        schedule.func_obj = template.func_obj
        now = utcnow()
        # a schedule starting now (or earlier) has its first occurrence at start_at itself
        first_after = now if schedule.start_at is None else min(now, schedule.start_at - _TICK)
        schedule.next_run_at = next_occurrence(schedule, first_after)
        if schedule.next_run_at is None:
            raise ValueError("this schedule has no occurrence in the future (check run_at/end_at)")
        return await self.task_queue.save_schedule(schedule)

    async def pause_schedule(self, schedule_id: str) -> bool:
        return await self.task_queue.pause_schedule(schedule_id)

    async def resume_schedule(self, schedule_id: str) -> bool:
        return await self.task_queue.resume_schedule(schedule_id)

    async def delete_schedule(self, schedule_id: str) -> bool:
        return await self.task_queue.delete_schedule(schedule_id)

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        return await self.task_queue.get_schedule(schedule_id)

    async def list_schedules(self, state: ScheduleState | str | None = None) -> list[Schedule]:
        return await self.task_queue.list_schedules(state)
