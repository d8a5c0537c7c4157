"""Dependencies on the NATS task queue: ``d.<id>`` lists the tasks waiting on a task, and a marker
key (``m.waiting``) says whether the project ever stored a WAITING task, so that a project without
dependencies never pays for looking them up."""

from __future__ import annotations

import time
from datetime import datetime

import msgspec

from omniq.models.task import Task
from omniq.storage.nats._conn import key_token
from omniq.storage.nats._records import Record, to_us
from omniq.storage.nats._store import Change, TaskStore

WAITING_MARK = "m.waiting"


class Dependencies(TaskStore):
    """The dependency primitives of :class:`omniq.storage.nats.queue.AsyncNATSQueue`."""

    _waiting_seen = False
    _waiting_checked = 0.0

    async def _mark(self, key: str) -> None:
        if await self._kv.get(key) is None:
            await self._kv.put(key, b"1")

    async def _index_waiters(self, waiting: list[Task]) -> None:
        await self._mark(WAITING_MARK)
        self._waiting_seen = True
        for task in waiting:
            for dep in task.depends_on:
                await self._index_waiter(dep, task.id)

    async def _index_waiter(self, dep: str, waiter: str) -> None:
        key = f"d.{key_token(dep)}"
        for _ in range(16):
            found = await self._kv.get(key)
            if found is None:
                if await self._kv.create(key, msgspec.msgpack.encode([waiter])) is not None:
                    return
                continue
            ids = msgspec.msgpack.decode(found[0], type=list[str])
            if waiter in ids:
                return
            ids.append(waiter)
            if await self._kv.update(key, msgspec.msgpack.encode(ids), found[1]) is not None:
                return
        raise RuntimeError(f"the dependency index of {dep!r} kept changing")

    async def _promote(self, task_ids: list[str], now: datetime) -> list[Task]:
        def change(r: Record) -> Record | None:
            if r.status != "waiting":
                return None
            r.status = "pending"
            return r

        done = await self._change_many([(t, change) for t in task_ids])
        moved = [(t, c[1]) for t, c in zip(task_ids, done, strict=True) if c and c[1] is not None]
        await self._hints([(t, record, None) for t, record in moved])
        return [self._view(t, record) for t, record in moved]

    async def _cancel_waiting(self, items: list[tuple[str, str]], now: datetime) -> list[Task]:
        now_us = to_us(now)

        def cancel(reason: str) -> Change:
            def change(r: Record) -> Record | None:
                if r.status != "waiting":
                    return None
                r.status, r.finished_us = "cancelled", now_us
                r.error_type, r.error_message = "DependencyFailed", reason
                return r

            return change

        done = await self._change_many([(t, cancel(reason)) for t, reason in items])
        return [
            self._view(t, c[1])
            for (t, _), c in zip(items, done, strict=True)
            if c is not None and c[1] is not None
        ]

    async def _ever_waiting(self) -> bool:
        """Whether this project ever stored a WAITING task. Once seen, remembered; absent, asked
        again after a second (a dependent stored meanwhile by another process and missed here
        is settled by the enqueuer itself or by the upkeep sweep)."""
        if self._waiting_seen:
            return True
        now = time.monotonic()
        if now - self._waiting_checked < 1.0:
            return False
        self._waiting_checked = now
        async with self.guard("reading"):
            self._waiting_seen = await self._kv.get(WAITING_MARK) is not None
        return self._waiting_seen

    async def settle_waiting(self, limit: int = 1000) -> int:
        """The upkeep sweep, skipped without a read of every record when no task ever waited."""
        self._waiting_checked = 0.0
        if not await self._ever_waiting():
            return 0
        return await super().settle_waiting(limit)

    async def _dependents(self, task_ids: list[str]) -> list[Task]:
        """Through the ``d.<id>`` index, and not at all until a project ever stored a WAITING
        task (one read of a marker key per acknowledgement batch)."""
        if not await self._ever_waiting():
            return []
        async with self.guard("reading dependents"):
            lists = await self._kv.get_many([f"d.{key_token(i)}" for i in task_ids])
            ids = sorted(
                {
                    w
                    for found in lists
                    if found
                    for w in msgspec.msgpack.decode(found[0], type=list[str])
                }
            )
            found = await self._read_many(ids)
        return [
            self._view(i, r)
            for i, r in zip(ids, found, strict=True)
            if r is not None and r.status == "waiting"
        ]


__all__ = ["WAITING_MARK", "Dependencies"]
