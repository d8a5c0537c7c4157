"""SQLite result storage: one row per task, in the same file as the queue when they share it."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import weakref
from typing import Any

import msgspec

from omniq._sync import SyncWrapper
from omniq.models.result import TaskResult
from omniq.storage.base import BaseResultStorage
from omniq.storage.sqlite._component import SQLiteComponent
from omniq.storage.sqlite._db import to_us
from omniq.storage.sqlite._schema import FILES

#: Shared with the task queue, which writes results in its completion transaction.
SQL = FILES.queries
UPSERT_RESULT = SQL["upsert_result"]


def result_row(project: str, result: TaskResult, payload: bytes) -> tuple[Any, ...]:
    return (
        project,
        result.task_id,
        result.status.value,
        result.schedule_id,
        to_us(result.finished_at),
        to_us(result.expires_at),
        payload,
    )


class AsyncSQLiteResultStorage(SQLiteComponent, BaseResultStorage):
    """Results in a SQLite file (``<base_dir>/<project_name>.db``, or ``path``).

    ``wait`` wakes on an in-process future when the result is written in this process, and on a
    datagram from any other process on this machine (see ``_wake``); never by polling.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        # result generation seen by each reading task before it looked (see _wake)
        self._read_gens: weakref.WeakKeyDictionary[asyncio.Task[Any], int] = (
            weakref.WeakKeyDictionary()
        )
        # reads asked for in the same turn of the loop, answered by one query
        self._pending_reads: dict[str, list[asyncio.Future[bytes | None]]] = {}

    def _note_read(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._read_gens[task] = self.db.hub.result_gen

    async def _set_many(self, items: list[tuple[TaskResult, bytes]]) -> None:
        rows = [result_row(self.project_name, r, payload) for r, payload in items]
        await self.db.write(lambda raw: raw.executemany(UPSERT_RESULT, rows))
        self.db.hub.notify_results(self.project_name, [(r.task_id, p) for r, p in items])

    async def _get(self, task_id: str) -> TaskResult | None:
        handed = self.db.hub.take_handoff(self.project_name, task_id)
        if handed is not None:
            return self.serializer.decode_result(handed, task_id)
        self._note_read()
        fut: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        if not self._pending_reads:
            asyncio.get_running_loop().call_soon(self._start_reads)
        self._pending_reads.setdefault(task_id, []).append(fut)
        payload = await fut
        return None if payload is None else self.serializer.decode_result(payload, task_id)

    def _start_reads(self) -> None:
        batch, self._pending_reads = self._pending_reads, {}
        reader = asyncio.ensure_future(self._read_batch(list(batch)))

        def deliver(done: asyncio.Future[dict[str, bytes]]) -> None:
            for task_id, futures in batch.items():
                for fut in futures:
                    if fut.done():
                        continue
                    if done.cancelled():
                        fut.cancel()
                    elif (exc := done.exception()) is not None:
                        fut.set_exception(exc)
                    else:
                        fut.set_result(done.result().get(task_id))

        reader.add_done_callback(deliver)

    async def _read_batch(self, task_ids: list[str]) -> dict[str, bytes]:
        """Many concurrent ``get_result`` calls cost one query, not one each."""
        if len(task_ids) == 1:
            row = await self.db.run(
                lambda raw: raw.execute(
                    SQL["get_result"], (self.project_name, task_ids[0])
                ).fetchall()
            )
        else:
            ids = msgspec.json.encode(task_ids).decode()
            row = await self.db.run(
                lambda raw: raw.execute(SQL["get_results"], (self.project_name, ids)).fetchall()
            )
        return dict(row)

    async def _get_many(self, task_ids: list[str]) -> dict[str, TaskResult]:
        if not task_ids:
            return {}
        ids = msgspec.json.encode(task_ids).decode()
        rows = await self.db.run(
            lambda raw: raw.execute(SQL["get_results"], (self.project_name, ids)).fetchall()
        )
        return {
            task_id: self.serializer.decode_result(payload, task_id) for task_id, payload in rows
        }

    async def _wait_for(self, task_id: str, timeout: float | None) -> None:
        hub = self.db.hub
        task = asyncio.current_task()
        since = self._read_gens.pop(task, None) if task is not None else None
        if hub.listen():
            return  # listening only from now on: the caller looks once more
        if since is None or hub.result_notified_since(task_id, since):
            return
        # no per-waiter polling: the hub re-checks every waiter with one query (see _wake)
        await hub.wait_result(self.project_name, task_id, timeout)

    async def _get_latest(self, schedule_id: str) -> TaskResult | None:
        now = to_us_now()
        row = await self.db.run(
            lambda raw: raw.execute(
                SQL["latest_result"], (self.project_name, schedule_id, now)
            ).fetchone()
        )
        return None if row is None else self.serializer.decode_result(row[0])

    async def _delete(self, task_id: str) -> bool:
        def delete(raw: sqlite3.Connection) -> bool:
            cur = raw.execute(SQL["delete_result"], (self.project_name, task_id))
            return cur.rowcount > 0

        return await self.db.run(delete)

    async def _cleanup(self, now: Any) -> int:
        def sweep(raw: sqlite3.Connection) -> int:
            cur = raw.execute(SQL["expire_results"], (self.project_name, to_us(now)))
            return cur.rowcount

        return await self.db.run(sweep)


def to_us_now() -> int:
    return time.time_ns() // 1000


class SQLiteResultStorage(SyncWrapper, async_class=AsyncSQLiteResultStorage):
    """Blocking API of :class:`AsyncSQLiteResultStorage`."""


__all__ = [
    "UPSERT_RESULT",
    "AsyncSQLiteResultStorage",
    "SQLiteResultStorage",
    "result_row",
]
