"""The SQLite task queue: a table with a queue column, claimed by ``UPDATE ... RETURNING``.

A claim is one statement inside ``BEGIN IMMEDIATE``: per requested queue, the first ``limit``
pending, ready tasks in claim order (index ``omniq_tasks_claim``), merged by the position of their
queue in the request, become RUNNING under a lease, each with its own claim token. The same
transaction ends tasks whose TTL ran out (EXPIRED) and tasks whose payload cannot be decoded
(DEAD), so no claimer ever sees them. Completions of a batch, with their results when the result
storage shares this file, are one transaction too.

A task with dependencies is stored WAITING (outside the claim index) with one row per dependency
in ``omniq_task_deps``, written in its enqueue transaction; triggers drop those rows when it leaves
WAITING. The completion transaction also reads which acknowledged tasks anyone waits on, so the
dependents lookup that follows every acknowledgement costs no round trip when nobody waits.
Workers publish JSON records in ``omniq_workers``, each with its expiry.

The parts live beside this module: the columns, statements and rows into tasks (``_rows``), and
the reads, purge and worker registry (``_reads``).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import weakref
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import msgspec

from omniq._sync import SyncWrapper
from omniq._time import utcnow
from omniq.config import get_logger
from omniq.exceptions import CorruptRecord, SerializationError
from omniq.models.task import Task, TaskStatus
from omniq.storage.base import (
    BaseResultStorage,
    Completion,
    Failure,
    HeartbeatStatus,
    RecordLimits,
    SupportsCancelSignal,
    SupportsDependencies,
    SupportsProgress,
    SupportsPurge,
    SupportsSchedules,
    SupportsWorkerRegistry,
    undecodable_kind,
)
from omniq.storage.sqlite._db import to_us
from omniq.storage.sqlite._listing import FunctionListing
from omniq.storage.sqlite._reads import SQLiteReads
from omniq.storage.sqlite._rows import (
    ID,
    QUEUE,
    SEQ,
    SQL,
    Row,
    _claim_order,
    _claim_sql,
    _corrupt_sql,
    _due_sql,
)
from omniq.storage.sqlite._schedules import ScheduleStore
from omniq.storage.sqlite._wake import SAFETY_RECHECK
from omniq.storage.sqlite.results import (
    UPSERT_RESULT,
    AsyncSQLiteResultStorage,
    result_row,
)

log = get_logger("storage.sqlite")

#: Bound of the ids remembered as having no dependents (see ``_remember_no_dependents``).
_NO_DEPENDENTS_CAP = 100_000


class AsyncSQLiteQueue(
    SQLiteReads,
    FunctionListing,
    ScheduleStore,
    RecordLimits,
    SupportsCancelSignal,
    SupportsProgress,
    SupportsDependencies,
    SupportsSchedules,
    SupportsWorkerRegistry,
    SupportsPurge,
):
    """Tasks in a SQLite file, shared safely by every process on this machine.

    ``path`` (or ``url``: ``sqlite:///relative.db``, ``sqlite:////absolute.db``) names the file;
    otherwise it is ``<base_dir>/<project_name>.db`` (``base_dir`` defaults to settings
    ``BASE_DIR``). ``busy_timeout`` is how long a write waits for another process's transaction.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        # task generation seen by each claiming task before its claim (see _wake)
        self._claim_gens: weakref.WeakKeyDictionary[asyncio.Task[Any], int] = (
            weakref.WeakKeyDictionary()
        )
        # ids acknowledged while nothing waited on them (see _remember_no_dependents)
        self._no_dependents: set[str] = set()

    def create_result_storage(self) -> BaseResultStorage:
        return AsyncSQLiteResultStorage(
            project_name=self.project_name, serializer=self.serializer, **self._location_options()
        )

    def stores_results_with(self, result_storage: BaseResultStorage | None) -> bool:
        return (
            isinstance(result_storage, AsyncSQLiteResultStorage)
            and result_storage.path == self.path
            and result_storage.project_name == self.project_name
        )

    # -- enqueue ---------------------------------------------------------------------------
    def _rows(self, items: list[tuple[Task, bytes]]) -> list[tuple[Any, ...]]:
        return [
            (
                self.project_name,
                t.id,
                t.queue_name,
                t.status.value,
                t.priority,
                to_us(t.ready_at),
                to_us(t.created_at),
                t.func,
                t.schedule_id,
                t.max_retries,
                to_us(t.eta),
                to_us(t.expires_at),
                payload,
            )
            for t, payload in items
        ]

    def _enqueue_blocking(self, items: list[tuple[Task, bytes]]) -> list[bool] | None:
        """The sync API's enqueue of one task in the caller's thread (Database.write_blocking),
        its wake-ups sent from there."""
        db = self._db
        if db is None or len(items) != 1 or items[0][0].status is TaskStatus.WAITING:
            return None
        try:
            count = db.write_blocking(SQL["insert_task"], self._rows(items)[0])
        except Exception as exc:  # nothing was written: the asyncio way tries and reports it
            log.debug("sync enqueue on %s goes through the loop: %s", self.path, exc)
            return None
        if count is None:
            return None
        if count == 1:
            db.hub.notify_tasks_threadsafe([items[0][0].queue_name])
        return [count == 1]

    async def _enqueue(self, items: list[tuple[Task, bytes]]) -> list[bool]:
        rows = self._rows(items)
        waits = any(t.status is TaskStatus.WAITING for t, _ in items)
        if len(rows) == 1 and not waits:  # one statement, nothing to read first
            # on the loop's thread when it can: the enqueue returns (and its wake-up goes out)
            # without two thread hand-offs
            created = await self.db.write(
                lambda raw: [raw.execute(SQL["insert_task"], rows[0]).rowcount == 1], here=True
            )
        else:
            ids = msgspec.json.encode([t.id for t, _ in items]).decode()

            def insert(raw: sqlite3.Connection) -> list[bool]:
                seen = {r[0] for r in raw.execute(SQL["seen_ids"], (self.project_name, ids))}
                raw.executemany(SQL["insert_task"], rows)
                flags = []
                deps: list[tuple[str, str, str]] = []
                for task, _ in items:
                    new = task.id not in seen
                    flags.append(new)
                    seen.add(task.id)
                    # only a task stored now gets its index rows: a duplicate id keeps the
                    # task (and the rows) stored the first time
                    if new and task.status is TaskStatus.WAITING:
                        deps.extend((self.project_name, dep, task.id) for dep in task.depends_on)
                if deps:
                    raw.executemany(SQL["insert_dep"], deps)
                return flags

            created = await self.db.write(insert)
        queues = {
            t.queue_name
            for (t, _), new in zip(items, created, strict=True)
            if new and t.status is not TaskStatus.WAITING
        }
        if queues:
            self.db.hub.notify_tasks(queues)
        if self.db.wrote_here:
            await asyncio.sleep(0)  # the loop's other tasks get their turn (Database.write)
        return created

    # -- claim -----------------------------------------------------------------------------
    async def _claim(
        self,
        queues: list[str],
        limit: int,
        worker_id: str | None,
        lease: float,
        now: datetime,
        here: bool = False,
    ) -> tuple[list[Task], list[Task]]:
        names = list(dict.fromkeys(queues))
        position = {q: i for i, q in enumerate(names)}
        expire_sql, claim_sql = _claim_sql(len(names))
        corrupt_sql = _corrupt_sql(len(names))
        now_us = to_us(now)
        params = self._params(
            now=now_us,
            lease_until=to_us(now + timedelta(seconds=lease)),
            worker=worker_id,
            limit=limit,
            **{f"q{i}": q for i, q in enumerate(names)},
        )
        hub = self.db.hub
        hub.claimers = True
        current = asyncio.current_task()
        if current is not None:
            self._claim_gens[current] = hub.task_gen

        def claim(raw: sqlite3.Connection) -> tuple[list[Row], list[Task], list[Task]]:
            expired = raw.execute(expire_sql, params).fetchall()
            claimed: list[Task] = []
            poison: list[Task] = []
            while True:
                wanted = limit - len(claimed)
                picked = raw.execute(claim_sql, {**params, "limit": wanted})
                rows = sorted(
                    picked.fetchall(), key=lambda r: (position[r[QUEUE]], *_claim_order(r))
                )
                spoiled = 0
                for row in rows:
                    try:
                        claimed.append(self._decode(row))
                    except SerializationError as exc:
                        # poison payload or corrupt record: dead at once, with the reason; the
                        # claim carries on
                        poison.append(kill(raw, row, exc))
                        spoiled += 1
                # claim again only for the places poison took, and only if the queue had more
                if not spoiled or len(rows) < wanted:
                    break
            if len(claimed) < limit:
                for row in raw.execute(corrupt_sql, {**params, "limit": limit - len(claimed)}):
                    view = self._view(row)
                    poison.append(kill(raw, row, CorruptRecord(view.error_message or "corrupt")))
            return expired, claimed, poison

        def kill(raw: sqlite3.Connection, row: Row, exc: SerializationError) -> Task:
            kind = undecodable_kind(exc)
            raw.execute(SQL["mark_dead"], (now_us, kind, str(exc), row[SEQ]))
            dead = self._view(row)
            dead.status, dead.finished_at, dead.lease_expires_at = TaskStatus.DEAD, now, None
            dead.error_type, dead.error_message = kind, str(exc)
            return dead

        # written here or not, the worker's claim loop lets the loop go once the tasks started
        expired, claimed, poison = await self.db.write(claim, here=here)
        return claimed, [self._view(r) for r in expired] + poison

    async def _wait_and_claim(
        self,
        queues: list[str],
        limit: int,
        worker_id: str | None,
        lease: float,
        timeout: float,
        stop: asyncio.Event | None,
    ) -> tuple[list[Task], list[Task]] | None:
        """The claim after a wake-up runs on the loop's thread when it can (Database.write's
        ``here``): the task just enqueued starts two thread wake-ups sooner."""
        await self._wait_for_tasks(queues, timeout, stop)
        if stop is not None and stop.is_set():
            return None
        return await self._claim(queues, limit, worker_id, lease, utcnow(), here=True)

    async def _wait_for_tasks(
        self, queues: list[str], timeout: float, stop: asyncio.Event | None
    ) -> None:
        hub = self.db.hub
        current = asyncio.current_task()
        since = self._claim_gens.pop(current, -1) if current is not None else -1
        if hub.listen():
            return  # listening only from now on: the caller claims once more
        names = list(dict.fromkeys(queues))
        now_us = to_us(utcnow())
        assert now_us is not None
        params = self._params(now=now_us, **{f"q{i}": q for i, q in enumerate(names)})
        sql = _due_sql(len(names))
        due = await self.db.run(lambda raw: raw.execute(sql, params).fetchone()[0])
        limit = min(timeout, SAFETY_RECHECK)
        if type(due) is int:  # a corrupt ready_at (text) is made DEAD by the claim instead
            limit = min(limit, max(0.0, (due - now_us) / 1e6) + 0.001)
        await hub.wait_tasks(names, limit, stop, since)

    # -- leases and outcomes ---------------------------------------------------------------
    async def _heartbeat(
        self, claims: list[tuple[str, str]], lease: float, now: datetime
    ) -> dict[str, HeartbeatStatus]:
        params = self._params(
            until=to_us(now + timedelta(seconds=lease)),
            pairs=msgspec.json.encode(claims).decode(),
        )
        rows = await self.db.run(lambda raw: raw.execute(SQL["heartbeat"], params).fetchall())
        renewed = {task_id: bool(cancel) for task_id, cancel in rows}
        return {
            task_id: (
                HeartbeatStatus.LOST
                if task_id not in renewed
                else HeartbeatStatus.CANCEL
                if renewed[task_id]
                else HeartbeatStatus.OK
            )
            for task_id, _ in claims
        }

    async def _set_progress(self, items: list[tuple[str, str, bytes]]) -> list[bool]:
        def write(raw: sqlite3.Connection) -> list[bool]:
            sql = SQL["set_progress"]
            return [
                bool(raw.execute(sql, self._params(id=i, claim=c, progress=p)).fetchall())
                for i, c, p in items
            ]

        return await self.db.write(write)

    async def _complete(
        self,
        completions: list[Completion],
        now: datetime,
        result_storage: BaseResultStorage | None,
    ) -> list[bool]:
        params = self._params(
            now=to_us(now),
            pairs=msgspec.json.encode([(c.task_id, c.claim) for c in completions]).decode(),
        )
        results = (
            [
                (c.task_id, c.claim, result_row(self.project_name, c.result, payload))
                for c in completions
                if c.result is not None
                for payload in (c.encoded_result(result_storage.serializer),)
            ]
            if result_storage is not None
            else []
        )

        def complete(raw: sqlite3.Connection) -> tuple[set[tuple[str, str]], set[str]]:
            acked = {(r[0], r[1]) for r in raw.execute(SQL["complete"], params).fetchall()}
            rows = [row for task_id, claim, row in results if (task_id, claim) in acked]
            if rows:
                raw.executemany(UPSERT_RESULT, rows)
            waited: set[str] = set()
            if acked:
                ids = msgspec.json.encode([task_id for task_id, _ in acked]).decode()
                waited = {r[0] for r in raw.execute(SQL["waited_on"], (ids, self.project_name))}
            return acked, waited

        acked, waited = await self.db.write(complete)
        if results:
            self.db.hub.notify_results(
                self.project_name,
                [(tid, row[-1]) for tid, claim, row in results if (tid, claim) in acked],
            )
        self._remember_no_dependents({task_id for task_id, _ in acked} - waited, waited)
        return [(c.task_id, c.claim) in acked for c in completions]

    def _remember_no_dependents(self, alone: set[str], waited: set[str]) -> None:
        """Notes the ids an acknowledgement found nobody waiting on, so that the
        :meth:`_dependents` call the base makes right after costs no round trip.

        Safe because SQLite serialises writers: a dependent enqueued before the acknowledgement
        committed has its index row seen by it; one enqueued after is settled by its own
        enqueue, which reads the dependency already final.
        """
        known = self._no_dependents
        if len(known) > _NO_DEPENDENTS_CAP:  # only if _dependents never came for them
            known.clear()
        known.update(alone)
        known.difference_update(waited)  # acknowledged again after a requeue: waited on now

    async def _fail(self, failure: Failure, now: datetime) -> Task | None:
        params = self._params(
            id=failure.task_id,
            claim=failure.claim,
            now=to_us(now),
            retry_at=to_us(failure.retry_at),
            error_type=failure.error_type,
            error_message=failure.error_message,
            error_traceback=failure.error_traceback,
        )

        def fail(raw: sqlite3.Connection) -> Row | None:
            final = failure.status  # decided by the caller (omniq.queue.retry.decide)
            if final is TaskStatus.PENDING:
                row: Row = raw.execute(SQL["fail_retry"], params).fetchone()
            else:
                row = raw.execute(SQL["fail_end"], {**params, "status": final.value}).fetchone()
            return row

        return self._moved(await self.db.write(fail))

    async def _release(
        self, task_id: str, claim: str, now: datetime, eta: datetime | None = None
    ) -> Task | None:
        params = self._params(id=task_id, claim=claim, now=to_us(now), eta=to_us(eta))

        def release(raw: sqlite3.Connection) -> Row | None:
            row: Row | None = raw.execute(SQL["release_cancelled"], params).fetchone()
            if row is None:  # handed back untouched: its attempt does not count
                row = raw.execute(SQL["release"], params).fetchone()
            return row

        return self._moved(await self.db.write(release))

    async def _cancel(self, task_id: str, now: datetime) -> Task | None:
        params = self._params(id=task_id, now=to_us(now))

        def cancel(raw: sqlite3.Connection) -> Row | None:
            for name in ("cancel_waiting_or_pending", "cancel_running", "task_by_id"):
                row: Row | None = raw.execute(SQL[name], params).fetchone()
                if row is not None:
                    return row
            return None

        row = await self.db.write(cancel)
        return None if row is None else self._view(row)

    # -- dependencies ----------------------------------------------------------------------
    async def _promote(self, task_ids: list[str], now: datetime) -> list[Task]:
        # ready_at stays what enqueue stored (its eta, or its creation): a promoted task takes
        # its place in claim order as the memory backend does, and an eta still in the future
        # keeps it out of claims until then
        params = self._params(ids=msgspec.json.encode(task_ids).decode())
        rows = await self.db.run(lambda raw: raw.execute(SQL["promote"], params).fetchall())
        tasks = [self._view(r) for r in rows]
        if tasks:
            self.db.hub.notify_tasks({t.queue_name for t in tasks})
        return tasks

    async def _cancel_waiting(self, items: list[tuple[str, str]], now: datetime) -> list[Task]:
        now_us = to_us(now)

        def cancel(raw: sqlite3.Connection) -> list[Row]:
            # one statement per task, all in one transaction and one thread hop
            moved: list[Row] = []
            for task_id, reason in items:
                cur = raw.execute(
                    SQL["cancel_waiting"], (now_us, reason, self.project_name, task_id)
                )
                moved.extend(cur.fetchall())
            return moved

        rows = await self.db.write(cancel)
        return [self._view(r) for r in rows]

    async def _dependents(self, task_ids: list[str]) -> list[Task]:
        # ids the acknowledgement that just ended them found nobody waiting on cost nothing;
        # the rest is one primary-key probe per id into omniq_task_deps
        known = self._no_dependents
        asked = [i for i in task_ids if i not in known]
        known.difference_update(task_ids)
        if not asked:
            return []
        params = self._params(ids=msgspec.json.encode(asked).decode())
        rows = await self.db.run(lambda raw: raw.execute(SQL["dependents"], params).fetchall())
        # a task waiting on several of the ids comes once per id
        unique = {r[ID]: r for r in rows}
        return [self._view(r) for r in unique.values()]

    async def _requeue(self, task_id: str, reset_attempts: bool, now: datetime) -> Task | None:
        params = self._params(id=task_id, reset=int(reset_attempts))
        return self._moved(
            await self.db.run(lambda raw: raw.execute(SQL["requeue"], params).fetchone())
        )

    async def _recover_expired(self, now: datetime) -> list[Task]:
        params = self._params(now=to_us(now))

        def recover(raw: sqlite3.Connection) -> list[Row]:
            dead = raw.execute(SQL["recover_dead"], params).fetchall()
            back = raw.execute(SQL["recover_pending"], params).fetchall()
            return dead + back

        rows = await self.db.write(recover)
        tasks = [self._view(r) for r in rows]
        queues = {t.queue_name for t in tasks if t.status is TaskStatus.PENDING}
        if queues:
            self.db.hub.notify_tasks(queues)
        return tasks

    async def _expire(self, now: datetime) -> list[Task]:
        params = self._params(now=to_us(now))
        rows = await self.db.run(lambda raw: raw.execute(SQL["expire"], params).fetchall())
        return [self._view(r) for r in rows]

    # -- cancel signal: the wake sockets beside the database ------------------------------
    async def _signal_cancel(self, task_id: str) -> None:
        self.db.hub.notify_cancels([task_id])

    @contextlib.asynccontextmanager
    async def _listen_cancels(self, deliver: Callable[[str], None]) -> AsyncIterator[None]:
        hub = self.db.hub
        hub.add_cancel_listener(deliver)
        try:
            yield
        finally:
            hub.remove_cancel_listener(deliver)


class SQLiteQueue(SyncWrapper, async_class=AsyncSQLiteQueue):
    """Blocking API of :class:`AsyncSQLiteQueue`."""


__all__ = ["AsyncSQLiteQueue", "SQLiteQueue"]
