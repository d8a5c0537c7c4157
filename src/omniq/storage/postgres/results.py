"""PostgreSQL result storage: a results table, waits woken by LISTEN/NOTIFY.

Every write NOTIFYs the results channel with the task ids in the payload, at commit (also when a
task queue on the same database stores results together with its acknowledgements). ``get``
calls made at the same time are coalesced into one query, so a thousand waiters woken together
cost one round trip, not a thousand.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from datetime import datetime
from typing import Any

from omniq._sync import SyncWrapper
from omniq.models.result import TaskResult
from omniq.storage._outages import wait_through_outages
from omniq.storage.base import BaseResultStorage
from omniq.storage.postgres._component import SNAPSHOT, PgComponent
from omniq.storage.postgres._connection import Listener, channel_name, transient
from omniq.storage.postgres._sql import queries

#: Ids in one coalesced read; more wait for the next round trip.
_READ_BATCH = 5_000
#: Task ids whose notification is remembered (to answer "was it written since my read?").
_REMEMBERED = 50_000


class _ResultWaiters:
    def __init__(self) -> None:
        self.items: dict[str, list[asyncio.Future[None]]] = {}
        self.heard = 0
        self.last: OrderedDict[str, int] = OrderedDict()  # task id -> `heard` when notified
        self.forgotten = 0  # highest `heard` value dropped from `last`
        self.everyone_at = 0  # a notification for all (reset, or an id too long to carry)

    def notify(self, payload: str) -> None:
        self.heard += 1
        for task_id in payload.split(","):
            if task_id == "*":
                self._wake_all()
                continue
            self.last[task_id] = self.heard
            self.last.move_to_end(task_id)
            for fut in self.items.pop(task_id, ()):
                if not fut.done():
                    fut.set_result(None)
        while len(self.last) > _REMEMBERED:
            _, self.forgotten = self.last.popitem(last=False)

    def reset(self) -> None:
        self.heard += 1
        self._wake_all()

    def _wake_all(self) -> None:
        self.everyone_at = self.heard
        items, self.items = self.items, {}
        for futs in items.values():
            for fut in futs:
                if not fut.done():
                    fut.set_result(None)

    def heard_since(self, task_id: str, snapshot: int) -> bool | None:
        """True: notified since; False: certainly not; None: cannot tell (forgotten)."""
        if self.everyone_at > snapshot or self.last.get(task_id, 0) > snapshot:
            return True
        if self.forgotten > snapshot:
            return None
        return False


class AsyncPostgresResultStorage(PgComponent, BaseResultStorage):
    """Results in PostgreSQL; options as for :class:`AsyncPostgresQueue` (connection ones)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._sql = queries()
        self._channel = channel_name("r", self.pg.schema, self.project_name)
        self._waiters = _ResultWaiters()
        self._listener = Listener(self.pg, self._channel, self._waiters.notify, self._waiters.reset)
        self._reads: dict[str, list[asyncio.Future[bytes | None]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def _close(self) -> None:
        await self._listener.close()
        reader, self._reader = self._reader, None
        if reader is not None and not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        for futs in self._reads.values():
            for fut in futs:
                if not fut.done():
                    fut.cancel()
        self._reads = {}
        await super()._close()

    # -- coalesced reads -------------------------------------------------------------------
    def _read(self, task_id: str) -> asyncio.Future[bytes | None]:
        fut: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._reads.setdefault(task_id, []).append(fut)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read_loop(), name="omniq-pg-results-read")
        return fut

    async def _read_loop(self) -> None:
        while self._reads:
            if len(self._reads) <= _READ_BATCH:
                batch, self._reads = self._reads, {}
            else:
                keys = list(self._reads)[:_READ_BATCH]
                batch = {k: self._reads.pop(k) for k in keys}
            try:
                rows = await self.pool.fetch(
                    self._sql["get_results"], self.project_name, list(batch)
                )
            except Exception as exc:
                for futs in batch.values():
                    for fut in futs:
                        if not fut.done():
                            fut.set_exception(exc)
                continue
            found = {r["task_id"]: r["payload"] for r in rows}
            for task_id, futs in batch.items():
                payload = found.get(task_id)
                for fut in futs:
                    if not fut.done():
                        fut.set_result(payload)

    # -- primitives ------------------------------------------------------------------------
    async def _set_many(self, items: list[tuple[TaskResult, bytes]]) -> None:
        latest: dict[str, tuple[TaskResult, bytes]] = {}
        for result, payload in items:  # one id twice in a batch: the later one wins
            latest.pop(result.task_id, None)
            latest[result.task_id] = (result, payload)
        rows = list(latest.values())
        await self.pool.fetchval(
            self._sql["set_results"],
            self.project_name,
            [r.task_id for r, _ in rows],
            [r.status.value for r, _ in rows],
            [r.schedule_id for r, _ in rows],
            [r.finished_at for r, _ in rows],
            [r.expires_at for r, _ in rows],
            [payload for _, payload in rows],
            self._channel,
        )

    async def _get(self, task_id: str) -> TaskResult | None:
        SNAPSHOT.set(
            (id(self), self._listener.epoch if self._listener.alive else -1, self._waiters.heard)
        )
        payload = await self._read(task_id)
        return None if payload is None else self.serializer.decode_result(payload, task_id)

    async def _get_many(self, task_ids: list[str]) -> dict[str, TaskResult]:
        rows = await self.pool.fetch(self._sql["get_results"], self.project_name, task_ids)
        return {
            r["task_id"]: self.serializer.decode_result(r["payload"], r["task_id"]) for r in rows
        }

    async def wait(self, task_id: str, timeout: float | None = None) -> TaskResult | None:
        """As every store's ``wait``, and it keeps waiting through a server restart: a read or
        LISTEN that fails because the server is away is tried again with backoff until the
        caller's own timeout (see :func:`~omniq.storage._outages.wait_through_outages`)."""
        return await wait_through_outages(
            lambda remaining: super(AsyncPostgresResultStorage, self).wait(task_id, remaining),
            timeout,
            transient=transient,
            server=lambda: f"PostgreSQL at {self.pg.describe()}",
            what=f"waiting for the result of task {task_id!r}",
        )

    async def _wait_for(self, task_id: str, timeout: float | None) -> None:
        snapshot = SNAPSHOT.get()
        await self._listener.ensure()
        trusted = (
            snapshot is not None and snapshot[0] == id(self) and snapshot[1] == self._listener.epoch
        )
        heard = self._waiters.heard_since(task_id, snapshot[2]) if snapshot and trusted else None
        if heard:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.items.setdefault(task_id, [])
        waiters.append(fut)
        try:
            # the listener may have started after the caller's read: look once more, now that
            # any later write is certain to notify us
            if heard is None and await self._read(task_id) is not None:
                return
            # asyncio.timeout, not 3.11's wait_for, which returns the result when a cancel
            # lands as it comes in, and the waiter's caller then runs on (see omniq._aio)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await fut
        finally:
            if not fut.done():
                fut.cancel()
            current = self._waiters.items.get(task_id)
            if current is not None:
                with contextlib.suppress(ValueError):
                    current.remove(fut)
                if not current:
                    self._waiters.items.pop(task_id, None)

    async def _get_latest(self, schedule_id: str) -> TaskResult | None:
        payload = await self.pool.fetchval(
            self._sql["latest_result"], self.project_name, schedule_id
        )
        if payload is None:
            return None
        result = self.serializer.decode_result(payload)
        return None if result.is_expired() else result

    async def _delete(self, task_id: str) -> bool:
        gone = await self.pool.fetchval(self._sql["delete_result"], self.project_name, task_id)
        return gone is not None

    async def _cleanup(self, now: datetime) -> int:
        count: int = await self.pool.fetchval(self._sql["cleanup_results"], self.project_name, now)
        return count

    async def _health(self) -> dict[str, Any]:
        details = await super()._health()
        return {**details, "listening": self._listener.alive}


class PostgresResultStorage(SyncWrapper, async_class=AsyncPostgresResultStorage):
    """Blocking API of :class:`AsyncPostgresResultStorage`."""


__all__ = ["AsyncPostgresResultStorage", "PostgresResultStorage"]
