"""Schedules on Redis: one hash per schedule (``B:sched:<id>``) with ``B:scheds`` and
``B:sched_due``, each change a compare-and-set on the schedule's version in Lua."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from omniq._time import utcnow
from omniq.exceptions import SerializationError
from omniq.models.schedule import Schedule, ScheduleState
from omniq.storage.base.schedules import report_unreadable
from omniq.storage.redis._conn import opt_us
from omniq.storage.redis._rows import RedisParts


class RedisSchedules(RedisParts):
    """The schedule primitives of the Redis task queue."""

    async def _write_schedule(
        self, schedule: Schedule, payload: bytes, expected_version: bytes | str = ""
    ) -> int:
        written: int = await self._run(
            "schedule_write",
            utcnow(),
            schedule.id,
            payload,
            schedule.state.value,
            opt_us(schedule.next_run_at),
            expected_version,
        )
        return written

    async def _read_schedules(
        self, which: str, now: datetime, schedule_id: str = ""
    ) -> list[tuple[bytes, Schedule]]:
        flat = await self._run("schedule_read", now, which, schedule_id)
        read: list[tuple[bytes, Schedule]] = []
        for i in range(0, len(flat), 3):
            try:
                read.append((flat[i + 1], self.serializer.decode_schedule(flat[i + 2])))
            except SerializationError as exc:
                if schedule_id:
                    raise  # the one asked for: its caller is told
                report_unreadable(self, exc)
        return read

    async def _save_schedule(self, schedule: Schedule, payload: bytes) -> None:
        await self._write_schedule(schedule, payload)

    async def _get_schedule(self, schedule_id: str) -> Schedule | None:
        found = await self._read_schedules("one", utcnow(), schedule_id)
        return found[0][1] if found else None

    async def _list_schedules(self, state: ScheduleState | None) -> list[Schedule]:
        return [
            s for _, s in await self._read_schedules("all", utcnow()) if state in (None, s.state)
        ]

    async def _update_schedule(
        self,
        schedule_id: str,
        changes: dict[str, Any],
        *,
        expected_next_run_at: datetime | None = None,
        check_next_run: bool = False,
    ) -> bool:
        # optimistic: read, change, write if nobody wrote in between (version check in Lua)
        while True:
            found = await self._read_schedules("one", utcnow(), schedule_id)
            if not found:
                return False
            version, schedule = found[0]
            if check_next_run and schedule.next_run_at != expected_next_run_at:
                return False
            for key, value in changes.items():
                setattr(schedule, key, value)
            written = await self._write_schedule(
                schedule, self.serializer.encode_schedule(schedule), version
            )
            if written != 0:
                return written == 1

    async def _delete_schedule(self, schedule_id: str) -> bool:
        return bool(await self._run("schedule_delete", utcnow(), schedule_id))

    async def _due_schedules(self, now: datetime) -> list[Schedule]:
        return [
            s
            for _, s in await self._read_schedules("due", now)
            if s.state is ScheduleState.ACTIVE
            and s.next_run_at is not None
            and s.next_run_at <= now
        ]


__all__ = ["RedisSchedules"]
