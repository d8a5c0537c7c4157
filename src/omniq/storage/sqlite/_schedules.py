"""Schedules of the SQLite task queue: the encoded schedule plus the columns that find due ones.

The payload is the schedule of record; ``state`` and ``next_run_at`` are copied into columns so
that due schedules are found by an index, and ``next_run_at`` is the compare-and-set token that
lets exactly one scheduler loop advance an occurrence.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import TYPE_CHECKING, Any

from omniq.models.schedule import Schedule, ScheduleState
from omniq.storage.base.schedules import readable_schedules
from omniq.storage.sqlite._component import SQLiteComponent
from omniq.storage.sqlite._db import to_us
from omniq.storage.sqlite._schema import FILES

if TYPE_CHECKING:
    from omniq.serialization import Serializer

SQL = FILES.queries


class ScheduleStore(SQLiteComponent):
    """The schedule primitives of :class:`~omniq.storage.base.BaseTaskQueue` on SQLite."""

    serializer: Serializer

    def _schedule_row(self, schedule: Schedule, payload: bytes) -> tuple[Any, ...]:
        return (
            self.project_name,
            schedule.id,
            schedule.queue_name,
            schedule.state.value,
            to_us(schedule.next_run_at),
            payload,
        )

    async def _save_schedule(self, schedule: Schedule, payload: bytes) -> None:
        row = self._schedule_row(schedule, payload)
        await self.db.run(lambda raw: raw.execute(SQL["save_schedule"], row))

    async def _get_schedule(self, schedule_id: str) -> Schedule | None:
        row = await self.db.run(
            lambda raw: raw.execute(
                SQL["get_schedule"], (self.project_name, schedule_id)
            ).fetchone()
        )
        return None if row is None else self.serializer.decode_schedule(row[1])

    async def _list_schedules(self, state: ScheduleState | None) -> list[Schedule]:
        params: tuple[str, ...]
        if state is None:
            sql, params = SQL["list_schedules"], (self.project_name,)
        else:
            sql, params = SQL["list_schedules_in_state"], (self.project_name, state.value)
        rows = await self.db.run(lambda raw: raw.execute(sql, params).fetchall())
        return readable_schedules(self, (r[0] for r in rows))

    async def _update_schedule(
        self,
        schedule_id: str,
        changes: dict[str, Any],
        *,
        expected_next_run_at: datetime | None = None,
        check_next_run: bool = False,
    ) -> bool:
        expected = to_us(expected_next_run_at)

        def update(raw: sqlite3.Connection) -> bool:
            found = raw.execute(SQL["get_schedule"], (self.project_name, schedule_id)).fetchone()
            if found is None or (check_next_run and found[0] != expected):
                return False
            schedule = self.serializer.decode_schedule(found[1])
            for key, value in changes.items():
                setattr(schedule, key, value)
            payload = self.serializer.encode_schedule(schedule)
            raw.execute(SQL["save_schedule"], self._schedule_row(schedule, payload))
            return True

        return await self.db.write(update)

    async def _delete_schedule(self, schedule_id: str) -> bool:
        def delete(raw: sqlite3.Connection) -> bool:
            cur = raw.execute(SQL["delete_schedule"], (self.project_name, schedule_id))
            return cur.rowcount > 0

        return await self.db.run(delete)

    async def _due_schedules(self, now: datetime) -> list[Schedule]:
        rows = await self.db.run(
            lambda raw: raw.execute(
                SQL["due_schedules"], (self.project_name, to_us(now))
            ).fetchall()
        )
        return readable_schedules(self, (r[0] for r in rows))


__all__ = ["ScheduleStore"]
