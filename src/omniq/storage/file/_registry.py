"""The worker registry and the schedules of the file task queue. Workers are one small object
each, out of the queue's hot object; schedules live in the state object, so that claiming a due
one is the same compare-and-set as claiming a task."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import msgspec

from omniq.models.schedule import Schedule, ScheduleState
from omniq.storage.base.schedules import readable_schedules
from omniq.storage.file._records import ENCODER, FileParts
from omniq.storage.file._state import QueueState, Txn


class FileRegistry(FileParts):
    """The worker registry and schedule primitives on the file store."""

    async def _save_worker(self, worker_id: str, payload: bytes, expires_at: datetime) -> None:
        await self.objects.write(
            f"{self._root}/workers/{worker_id}", ENCODER.encode((expires_at, payload))
        )

    async def _list_workers(self, now: datetime) -> list[bytes]:
        listed = await self.objects.list(f"{self._root}/workers/")
        found = await asyncio.gather(*(self.objects.read(o["path"]) for o in listed))
        alive: list[bytes] = []
        stale: list[str] = []
        for obj, got in zip(listed, found, strict=True):
            if got is None:
                continue
            expires_at, payload = msgspec.msgpack.decode(got[0], type=tuple[datetime, bytes])
            if expires_at <= now:
                stale.append(obj["path"])
            else:
                alive.append(payload)
        await self.objects.delete(stale)
        return alive

    async def _delete_worker(self, worker_id: str) -> bool:
        key = f"{self._root}/workers/{worker_id}"
        if await self.objects.read(key) is None:
            return False
        await self.objects.delete([key])
        return True

    # -- schedules: in the state object, so claiming a due one is the same compare-and-set --
    async def _save_schedule(self, schedule: Schedule, payload: bytes) -> None:
        def op(state: QueueState, txn: Txn) -> None:
            state.schedules[schedule.id] = payload
            txn.touch()

        await self.log.run(op)

    async def _get_schedule(self, schedule_id: str) -> Schedule | None:
        def op(state: QueueState, txn: Txn) -> bytes | None:
            return state.schedules.get(schedule_id)

        payload = await self.log.run(op)
        return None if payload is None else self.serializer.decode_schedule(payload)

    async def _list_schedules(self, state: ScheduleState | None) -> list[Schedule]:
        def op(st: QueueState, txn: Txn) -> list[bytes]:
            return list(st.schedules.values())

        found = readable_schedules(self, await self.log.run(op))
        return [s for s in found if state is None or s.state is state]

    async def _update_schedule(
        self,
        schedule_id: str,
        changes: dict[str, Any],
        *,
        expected_next_run_at: datetime | None = None,
        check_next_run: bool = False,
    ) -> bool:
        serializer = self.serializer

        def op(state: QueueState, txn: Txn) -> bool:
            payload = state.schedules.get(schedule_id)
            if payload is None:
                return False
            schedule = serializer.decode_schedule(payload)
            if check_next_run and schedule.next_run_at != expected_next_run_at:
                return False
            for key, value in changes.items():
                setattr(schedule, key, value)
            state.schedules[schedule_id] = serializer.encode_schedule(schedule)
            txn.touch()
            return True

        return await self.log.run(op)

    async def _delete_schedule(self, schedule_id: str) -> bool:
        def op(state: QueueState, txn: Txn) -> bool:
            if state.schedules.pop(schedule_id, None) is None:
                return False
            txn.touch()
            return True

        return await self.log.run(op)
