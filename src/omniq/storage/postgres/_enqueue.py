"""Enqueue on PostgreSQL: one task by a plain INSERT, a small batch as one array per column,
a large one COPYed straight into the table (``_copy.py``), or, when it has dependencies or
meets an id that exists, into the connection's staging table and inserted from there; each one
statement or one transaction, so a batch is stored whole or not at all."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import msgspec

from omniq.models.task import Task
from omniq.storage.postgres._component import PgComponent
from omniq.storage.postgres._copy import CONFLICTS, TASK_COLUMNS, copy_tasks

#: From this many tasks on, enqueue_many COPYs the batch instead of sending arrays (measured:
#: below it the extra round trips of the COPY path cost more than its cheaper rows save).
COPY_THRESHOLD = 200
#: A pool this large keeps one of its connections for one-task enqueues (``PgEnqueue._lane``).
LANE_MIN_POOL = 4
_STAGING = "omniq_enqueue_stage_v1"
_STAGING_COLUMNS = (*TASK_COLUMNS, "deps")


#: Attempts of an enqueue statement that PostgreSQL chose as a deadlock victim.
_DEADLOCK_ATTEMPTS = 5


async def _retry_deadlocks(attempt: Callable[[], Awaitable[set[str]]]) -> set[str]:
    """Runs an enqueue transaction again when it was a deadlock victim.

    Two batches inserting some of the same ids in opposite orders wait for each other's
    uncommitted rows (ON CONFLICT DO NOTHING too: it must know whether the other commits), and
    PostgreSQL rolls one back. Its rows are gone with it, so it simply goes again: by then the
    other holds its rows until it commits, and the retry waits for that and skips them.
    """
    for remaining in reversed(range(_DEADLOCK_ATTEMPTS)):
        try:
            return await attempt()
        except asyncpg.DeadlockDetectedError:
            if not remaining:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _lost(conn: Any) -> bool:
    """A held pooled connection is unusable: closed, or taken back by the pool (it does that
    itself when the server ends the connection)."""
    try:
        return bool(conn.is_closed())
    except asyncpg.InterfaceError:
        return True


def _depended_on(tasks: Iterable[Task]) -> list[str]:
    """Every id a batch depends on (flagged ``waited_on`` by the enqueue statement)."""
    return sorted({dep for t in tasks for dep in t.depends_on})


def _json_ids(ids: tuple[str, ...]) -> str:
    """A task's ``depends_on`` as one JSON text: a batch of ragged id lists travels as one flat
    text[] parameter (PostgreSQL arrays cannot be ragged) and becomes a text[] column in SQL."""
    return msgspec.json.encode(ids).decode()


def _columns(t: Task, payload: bytes) -> tuple[Any, ...]:
    """A task's columns in the order every enqueue statement (and the COPY) takes them."""
    return (
        t.id,
        t.queue_name,
        t.func,
        t.priority,
        t.status.value,
        t.created_at,
        t.eta,
        t.expires_at,
        t.result_ttl,
        t.max_attempts,
        t.schedule_id,
        payload,
    )


class PgEnqueue(PgComponent):
    """The enqueue primitive of the PostgreSQL task queue (``AsyncPostgresQueue`` sets the
    statements and the channel)."""

    _sql: dict[str, str]
    _channel: str
    _staged_plain: str
    _staged_skipping: str
    #: A pooled connection held for one-task enqueues, and whether a call is using it.
    _lane: Any = None
    _lane_busy = False

    async def _init_connection(self, conn: Any) -> None:
        await conn.execute(self._sql["create_staging"])

    async def _close(self) -> None:
        lane, self._lane = self._lane, None
        if lane is not None and not self._lane_busy:
            with contextlib.suppress(Exception):
                await self.pool.release(lane)
        await super()._close()

    async def _enqueue(self, items: list[tuple[Task, bytes]]) -> list[bool]:
        tasks = [task for task, _ in items]
        if len(items) >= COPY_THRESHOLD:
            created = await self._enqueue_copy(items)
        elif len(items) == 1 and not tasks[0].depends_on:
            created = await self._enqueue_one(*items[0])
        else:
            created = await _retry_deadlocks(lambda: self._enqueue_arrays(items))
        flags = []
        for task in tasks:  # an id given twice in one batch is created once, by its first copy
            flags.append(task.id in created)
            created.discard(task.id)
        return flags

    async def _enqueue_one(self, t: Task, payload: bytes) -> set[str]:
        """One task without dependencies (the sequential enqueue): one plain INSERT, on the
        lane when it is free.

        The lane is one pooled connection this queue keeps (taken at its first one-task
        enqueue, from a pool of :data:`LANE_MIN_POOL` or more): a call that finds it free skips
        the pool's acquire and release -- a queue, a shielded release task and an idle timer
        per call, ~50 us of CPU of a ~500 us enqueue; 1,450-1,760 -> 1,730-2,170 enqueues/s
        interleaved here. A call that finds it busy (concurrent enqueues) uses the pool. Any
        error, or a lane found closed (the server went away meanwhile), hands the connection
        back to the pool, which replaces it if it is broken, and the call takes a new one."""
        args = (self.project_name, *_columns(t, payload), self._channel)
        if self._lane_busy or self.pg.max_size < LANE_MIN_POOL:
            row = await self.pool.fetchrow(self._sql["enqueue_one"], *args)
            return set(row["created"])
        self._lane_busy = True
        try:
            if self._lane is not None and _lost(self._lane):  # while it was idle
                lane, self._lane = self._lane, None
                with contextlib.suppress(asyncpg.InterfaceError):  # the pool took it back
                    await self.pool.release(lane)
            if self._lane is None:
                self._lane = await self.pool.acquire()
            row = await self._lane.fetchrow(self._sql["enqueue_one"], *args)
        except BaseException:
            lane, self._lane = self._lane, None
            if lane is not None:
                with contextlib.suppress(Exception):
                    await self.pool.release(lane)
            raise
        finally:
            self._lane_busy = False
        return set(row["created"])

    async def _enqueue_arrays(self, items: list[tuple[Task, bytes]]) -> set[str]:
        """A small batch: one statement, one array per column (one round trip)."""
        tasks = [task for task, _ in items]
        arrays = [list(column) for column in zip(*(_columns(*i) for i in items), strict=True)]
        row = await self.pool.fetchrow(
            self._sql["enqueue"],
            self.project_name,
            *arrays,
            self._channel,
            [_json_ids(t.depends_on) if t.depends_on else None for t in tasks],
            _depended_on(tasks),
        )
        return set(row["created"])

    async def _enqueue_copy(self, items: list[tuple[Task, bytes]]) -> set[str]:
        """A large batch: without dependencies, COPY straight into ``tasks`` (``_copy.py``);
        with them, COPY into the connection's staging table, then one INSERT ... SELECT (which
        unpacks ``depends_on`` and flags the tasks depended on). One transaction either way:
        COPY's binary rows cost the server far less than unpacking a dozen arrays, and the
        batch is still all-or-nothing.

        Both are tried plain first: skipping existing ids (ON CONFLICT DO NOTHING) costs its
        speculative insertion on every row, a quarter of the statement, and COPY cannot skip at
        all -- to serve the rare batch that holds a known id (a retried batch). Such a batch
        fails the plain try on the primary key -- the transaction rolls back, nothing is kept --
        and goes again by the staging path, skipping them; so does one that meets a concurrent
        batch holding the same ids (a deadlock between the two is one way to meet it). An id
        twice in the batch goes that way at once.
        """
        depended_on = _depended_on(t for t, _ in items)
        distinct = len({t.id for t, _ in items}) == len(items)
        if distinct and not depended_on:  # no dependencies: straight into the table
            try:
                rows = [(self.project_name, *_columns(*item)) for item in items]
                return await copy_tasks(self.pool, rows, self._channel)
            except CONFLICTS:
                pass
        records = [
            (*_columns(t, payload), _json_ids(t.depends_on) if t.depends_on else None)
            for t, payload in items
        ]
        if distinct and depended_on:
            try:
                return await self._insert_staged(records, depended_on, self._staged_plain)
            except CONFLICTS:
                pass
        return await _retry_deadlocks(
            lambda: self._insert_staged(records, depended_on, self._staged_skipping)
        )

    async def _insert_staged(
        self, records: list[tuple[Any, ...]], depended_on: list[str], sql: str
    ) -> set[str]:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.copy_records_to_table(_STAGING, records=records, columns=_STAGING_COLUMNS)
            row = await conn.fetchrow(sql, self.project_name, self._channel, depended_on)
        return set(row["created"])


__all__ = ["COPY_THRESHOLD", "LANE_MIN_POOL", "PgEnqueue"]
