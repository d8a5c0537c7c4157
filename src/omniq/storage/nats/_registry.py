"""Schedules (``s.<id>``, advanced by revision compare-and-set, so that each occurrence is enqueued
once however many schedulers run) and the worker registry (``w.<id>``, with its expiry in the
value) of the NATS task queue, in the tasks bucket."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from omniq.models.schedule import Schedule, ScheduleState
from omniq.storage.base.schedules import readable_schedules
from omniq.storage.nats._conn import key_token
from omniq.storage.nats._records import to_us
from omniq.storage.nats._store import TaskStore


class Registry(TaskStore):
    """The schedule and worker-registry primitives of
    :class:`omniq.storage.nats.queue.AsyncNATSQueue`."""

    # -- schedules -------------------------------------------------------------------------
    async def _save_schedule(self, schedule: Schedule, payload: bytes) -> None:
        async with self.guard("saving a schedule"):
            await self._kv.put(f"s.{key_token(schedule.id)}", payload)

    async def _get_schedule(self, schedule_id: str) -> Schedule | None:
        async with self.guard("reading a schedule"):
            found = await self._kv.get(f"s.{key_token(schedule_id)}")
        return None if found is None else self.serializer.decode_schedule(found[0])

    async def _list_schedules(self, state: ScheduleState | None) -> list[Schedule]:
        async with self.guard("listing schedules"):
            values = await self._kv.get_many(sorted(await self._kv.keys("s.>")))
        payloads = (v[0] for v in values if v is not None)
        found = readable_schedules(self, payloads)
        return [s for s in found if state is None or s.state is state]

    async def _update_schedule(
        self,
        schedule_id: str,
        changes: dict[str, Any],
        *,
        expected_next_run_at: datetime | None = None,
        check_next_run: bool = False,
    ) -> bool:
        key = f"s.{key_token(schedule_id)}"
        async with self.guard("updating a schedule"):
            for _ in range(8):
                found = await self._kv.get(key)
                if found is None:
                    return False
                schedule = self.serializer.decode_schedule(found[0])
                if check_next_run and schedule.next_run_at != expected_next_run_at:
                    return False
                for name, value in changes.items():
                    setattr(schedule, name, value)
                payload = self.serializer.encode_schedule(schedule)
                if await self._kv.update(key, payload, found[1]) is not None:
                    return True
                if check_next_run:
                    return False  # another scheduler advanced it first: its occurrence, not ours
        return False

    async def _delete_schedule(self, schedule_id: str) -> bool:
        async with self.guard("deleting a schedule"):
            return await self._kv.delete_existing(f"s.{key_token(schedule_id)}")

    # -- worker registry -------------------------------------------------------------------
    async def _save_worker(self, worker_id: str, payload: bytes, expires_at: datetime) -> None:
        value = msgspec.msgpack.encode((to_us(expires_at), payload))
        async with self.guard("registering a worker"):
            await self._kv.put(f"w.{key_token(worker_id)}", value)

    async def _list_workers(self, now: datetime) -> list[bytes]:
        now_us = to_us(now) or 0
        async with self.guard("listing workers"):
            keys = await self._kv.keys("w.>")
            values = await self._kv.get_many(keys)
            alive = []
            gone: list[tuple[str, int | None]] = []
            for key, value in zip(keys, values, strict=True):
                if value is None:
                    continue
                expires_us, payload = msgspec.msgpack.decode(value[0], type=tuple[int, bytes])
                if expires_us <= now_us:
                    gone.append((key, value[1]))
                else:
                    alive.append(payload)
            await self._kv.delete_many(gone)
        return alive

    async def _delete_worker(self, worker_id: str) -> bool:
        async with self.guard("unregistering a worker"):
            return await self._kv.delete_existing(f"w.{key_token(worker_id)}")


__all__ = ["Registry"]
