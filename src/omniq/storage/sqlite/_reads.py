"""Reads of the SQLite task queue (one task, many, a listing page, sizes, statistics), the
purge and the worker registry: each one statement on the project's rows."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime

import msgspec

from omniq.models.task import Task, TaskStatus
from omniq.storage.base.limits import Change, T
from omniq.storage.base.listing import cursor_gone
from omniq.storage.sqlite._db import to_us
from omniq.storage.sqlite._rows import _LIST_SQL, ID, SQL, Row, SQLiteRows


class SQLiteReads(SQLiteRows):
    """The reading primitives, the purge and the worker registry of the SQLite task queue."""

    async def _get_task(self, task_id: str) -> Task | None:
        row = await self.db.run(
            lambda raw: raw.execute(SQL["task_by_id"], self._params(id=task_id)).fetchone()
        )
        return None if row is None else self._view(row)

    async def _get_tasks(self, task_ids: list[str]) -> dict[str, Task]:
        params = self._params(ids=msgspec.json.encode(task_ids).decode())
        rows = await self.db.run(lambda raw: raw.execute(SQL["get_tasks"], params).fetchall())
        return {r[ID]: self._view(r) for r in rows}

    async def _list_tasks(
        self,
        queue: str | None,
        status: TaskStatus | None,
        limit: int,
        offset: int,
        after: str | None = None,
        descending: bool = False,
    ) -> list[Task]:
        groups, params = "", []
        if queue is not None:
            groups += " AND g.queue = ?"
            params.append(queue)
        if status is not None:
            groups += " AND g.status = ?"
            params.append(status.value)
        sql = _LIST_SQL[descending].replace("{groups}", groups)

        def listing(raw: sqlite3.Connection) -> list[Row]:
            start = -1 if not descending else 2**63 - 1
            if after is not None:
                found = raw.execute(SQL["seq_of"], (self.project_name, after)).fetchone()
                if found is None:
                    raise cursor_gone(after)
                start = found[0]
            args = [self.project_name, *params, start, offset + limit, limit, offset]
            return raw.execute(sql, args).fetchall()

        if limit == 0:
            return []
        return [self._view(r) for r in await self.db.run(listing)]

    async def _queue_size(self, queue: str) -> int:
        count: int = await self.db.run(
            lambda raw: raw.execute(SQL["queue_size"], (self.project_name, queue)).fetchone()[0]
        )
        return count

    async def _stats(self) -> dict[str, dict[str, int]]:
        rows = await self.db.run(
            lambda raw: raw.execute(SQL["stats"], (self.project_name,)).fetchall()
        )
        stats: dict[str, dict[str, int]] = {}
        for queue, status, count in rows:
            stats.setdefault(queue, {})[status] = count
        return stats

    async def _purge(self, queue: str | None, statuses: frozenset[TaskStatus]) -> int:
        where, params = ["project = ?"], [self.project_name]
        if queue is not None:
            where.append("queue = ?")
            params.append(queue)
        where.append(f"status IN ({', '.join('?' * len(statuses))})")
        params += sorted(statuses)
        sql = SQL["purge"].replace("{where}", " AND ".join(where))

        def purge(raw: sqlite3.Connection) -> int:
            cur = raw.execute(sql, params)
            return cur.rowcount

        return await self.db.run(purge)

    # -- workers ---------------------------------------------------------------------------
    async def _save_worker(self, worker_id: str, payload: bytes, expires_at: datetime) -> None:
        params = (self.project_name, worker_id, to_us(expires_at), payload)
        await self.db.run(lambda raw: raw.execute(SQL["save_worker"], params))

    async def _list_workers(self, now: datetime) -> list[bytes]:
        now_us = to_us(now)

        def listing(raw: sqlite3.Connection) -> list[bytes]:
            # a worker killed without saying goodbye leaves its record: drop it on the way
            raw.execute(SQL["drop_expired_workers"], (self.project_name, now_us))
            return [bytes(r[0]) for r in raw.execute(SQL["list_workers"], (self.project_name,))]

        return await self.db.write(listing)

    async def _delete_worker(self, worker_id: str) -> bool:
        count: int = await self.db.run(
            lambda raw: raw.execute(SQL["delete_worker"], (self.project_name, worker_id)).rowcount
        )
        return count == 1

    # -- limits (RecordLimits): one record changed in one transaction ----------------------
    async def _change_limit(self, kind: str, key: str, change: Change[T]) -> T:
        ids = (self.project_name, kind, key)

        def apply(raw: sqlite3.Connection) -> T:
            row = raw.execute(SQL["limit_get"], ids).fetchone()
            new, answer = change(None if row is None else bytes(row[0]))
            if new is not None:
                raw.execute(SQL["limit_put"], (*ids, new))
            return answer

        return await self.db.write(apply)

    async def _read_limits(self) -> list[tuple[str, str, bytes]]:
        rows = await self.db.run(
            lambda raw: raw.execute(SQL["limit_all"], (self.project_name,)).fetchall()
        )
        return [(r[0], r[1], bytes(r[2])) for r in rows]

    async def _drop_limits(self, spent: Callable[[str, bytes], bool]) -> int:
        def drop(raw: sqlite3.Connection) -> int:
            rows = raw.execute(SQL["limit_all"], (self.project_name,)).fetchall()
            gone = [(self.project_name, r[0], r[1]) for r in rows if spent(r[0], bytes(r[2]))]
            raw.executemany(SQL["limit_delete"], gone)
            return len(gone)

        return await self.db.write(drop)


__all__ = ["SQLiteReads"]
