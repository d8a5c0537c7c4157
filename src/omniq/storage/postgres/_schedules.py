"""Schedules of the PostgreSQL task queue: the encoded schedule plus the columns that find due
ones; ``next_run_at`` is the compare-and-set token that lets one scheduler loop advance an
occurrence."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from omniq.models.schedule import Schedule, ScheduleState
from omniq.storage.base.schedules import readable_schedules
from omniq.storage.postgres._component import PgComponent


class PgScheduleStore(PgComponent):
    """The schedule primitives of :class:`~omniq.storage.base.SupportsSchedules` on PostgreSQL."""

    _sql: dict[str, str]

    async def _save_schedule(self, schedule: Schedule, payload: bytes) -> None:
        await self.pool.execute(
            self._sql["save_schedule"],
            self.project_name,
            schedule.id,
            schedule.queue_name,
            schedule.state.value,
            schedule.next_run_at,
            schedule.created_at,
            payload,
        )

    async def _get_schedule(self, schedule_id: str) -> Schedule | None:
        payload = await self.pool.fetchval(
            self._sql["get_schedule"], self.project_name, schedule_id
        )
        return None if payload is None else self.serializer.decode_schedule(payload)

    async def _list_schedules(self, state: ScheduleState | None) -> list[Schedule]:
        rows = await self.pool.fetch(
            self._sql["list_schedules"],
            self.project_name,
            state.value if state is not None else None,
        )
        return readable_schedules(self, (r["payload"] for r in rows))

    async def _update_schedule(
        self,
        schedule_id: str,
        changes: dict[str, Any],
        *,
        expected_next_run_at: datetime | None = None,
        check_next_run: bool = False,
    ) -> bool:
        """Read-modify-write under the row lock: of two schedulers advancing the same
        occurrence, the second sees the first's ``next_run_at`` and loses the compare-and-set."""
        async with self.pool.acquire() as conn, conn.transaction():
            payload = await conn.fetchval(
                self._sql["lock_schedule"], self.project_name, schedule_id
            )
            if payload is None:
                return False
            schedule = self.serializer.decode_schedule(payload)
            if check_next_run and schedule.next_run_at != expected_next_run_at:
                return False
            for key, value in changes.items():
                setattr(schedule, key, value)
            await conn.execute(
                self._sql["update_schedule"],
                self.project_name,
                schedule_id,
                schedule.queue_name,
                ScheduleState(schedule.state).value,
                schedule.next_run_at,
                self.serializer.encode_schedule(schedule),
            )
        return True

    async def _delete_schedule(self, schedule_id: str) -> bool:
        gone = await self.pool.fetchval(
            self._sql["delete_schedule"], self.project_name, schedule_id
        )
        return gone is not None

    async def _due_schedules(self, now: datetime) -> list[Schedule]:
        rows = await self.pool.fetch(self._sql["due_schedules"], self.project_name, now)
        return readable_schedules(self, (r["payload"] for r in rows))


__all__ = ["PgScheduleStore"]
