"""The PostgreSQL task queue: a queue column, claims by ``FOR UPDATE SKIP LOCKED``, wake-ups by
LISTEN/NOTIFY (ARCHITECTURE sections 3, 10 and 11b).

Every primitive is one statement (so one transaction) from ``sql/queries.sql``; enqueue, claim,
heartbeat and completion take whole batches in that one statement. Task state lives in columns;
the arguments travel in the serializer's envelope (``payload``) and are decoded only on claim.
Enqueue lives in ``_enqueue``, listing in ``_listing``, schedules in ``_schedules``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

from omniq._aio import cancel_and_wait, idle
from omniq._sync import SyncWrapper
from omniq._time import utcnow
from omniq.config import get_logger
from omniq.exceptions import SerializationError
from omniq.models.task import STATE_FIELDS, Task, TaskStatus
from omniq.storage._waiters import QueueWaiters
from omniq.storage.base import (
    BaseResultStorage,
    Completion,
    Failure,
    HeartbeatStatus,
    SupportsCancelSignal,
    SupportsDependencies,
    SupportsProgress,
    SupportsPurge,
    SupportsSchedules,
    SupportsWorkerRegistry,
    decoded_state,
    lay_progress,
    record_view,
    undecodable_kind,
)
from omniq.storage.postgres._component import SNAPSHOT
from omniq.storage.postgres._connection import Listener, channel_name
from omniq.storage.postgres._enqueue import PgEnqueue
from omniq.storage.postgres._limits import PgLimits
from omniq.storage.postgres._listing import PgListing
from omniq.storage.postgres._schedules import PgScheduleStore
from omniq.storage.postgres._sql import queries

_STATE_COLUMNS = tuple(name for name in STATE_FIELDS if name != "status")

#: Notifications the queue listener remembers for claims by id (a burst of more one-task
#: enqueues than this between two claims is claimed the usual way).
_HEARD_KEPT = 1024

#: When the claim that SNAPSHOT was taken for ran (its ``now``): a claim by id afterwards
#: looks for delayed tasks that came due since then, which no notification announces.
_CLAIMED_AT: contextvars.ContextVar[datetime | None] = contextvars.ContextVar(
    "omniq_postgres_claimed_at", default=None
)

log = get_logger("storage.postgres")


#: A count summed from more rows than this (connections come and go, each adds rows of its own)
#: has the rows of the connections that are gone folded into one by the reader.
_FOLD_AFTER = 32


class _QueueWaiters(QueueWaiters):
    """Claimers blocked on a set of queues, and what the listener heard (for snapshots).

    A notification on the queue channel is ``queue`` (something may be ready there: a batch,
    a retry, a release) or ``queue id`` (a one-task enqueue: this task is new there; queue
    names have no space). The last :data:`_HEARD_KEPT` are kept, so that a claimer woken from
    an empty claim can claim exactly the tasks it heard of, by primary key
    (:meth:`ids_since`)."""

    def __init__(self) -> None:
        super().__init__()
        self.heard = 0  # notifications (and resets) so far
        self.last: dict[str, int] = {}  # queue -> value of `heard` at its last notification
        self.reset_at = 0
        self.log: deque[tuple[int, str, str]] = deque(maxlen=_HEARD_KEPT)  # (heard, queue, id)

    def hear(self, payload: str) -> None:
        queue, _, task_id = payload.partition(" ")
        self.notify(queue, task_id)

    def notify(self, queue: str, task_id: str = "") -> None:
        self.heard += 1
        self.last[queue] = self.heard
        self.log.append((self.heard, queue, task_id))
        super().notify(queue)

    def ids_since(self, queues: list[str], snapshot: int) -> list[str] | None:
        """The ids of the tasks enqueued one by one into ``queues`` since ``snapshot``, when
        they are all that was heard for these queues since: None when nothing was, when a
        notification named only a queue, when the listener was reset, or when the log no
        longer reaches back that far (the caller then claims the usual way)."""
        if self.heard == snapshot or self.reset_at > snapshot:
            return None
        if not self.log or self.log[0][0] > snapshot + 1:
            return None
        wanted = set(queues)
        ids: list[str] = []
        for heard, queue, task_id in reversed(self.log):
            if heard <= snapshot:
                break
            if queue in wanted:
                if not task_id:
                    return None
                ids.append(task_id)
        return ids or None

    def reset(self) -> None:
        self.heard += 1
        self.reset_at = self.heard
        self.notify_all()

    def heard_since(self, queues: list[str], snapshot: int) -> bool:
        return self.reset_at > snapshot or any(self.last.get(q, 0) > snapshot for q in queues)


class _Unwatched:
    """Ids this queue acknowledged whose row said no task depends on them (``waited_on`` false,
    read under the row lock by the completing UPDATE). The dependents lookup that the base runs
    after every acknowledgement batch answers "none" for them without a round trip.

    Why that is safe: a dependent's enqueue sets ``waited_on`` on the row it depends on in its
    own transaction. If it did so before the completion, the completion's UPDATE waited for its
    row lock and read the flag; if after, the completion had committed first, and the
    dependent's own settle step (run by ``enqueue_many`` after its commit) sees the dependency
    finished. Either way somebody moves the dependent on. Bounded: ids whose lookup never came
    (a cancelled caller) are dropped wholesale past a limit, which only costs a lookup.
    """

    _LIMIT = 100_000

    def __init__(self) -> None:
        self._ids: set[str] = set()

    def note(self, ids: set[str]) -> None:
        if len(self._ids) + len(ids) > self._LIMIT:
            self._ids.clear()
        self._ids |= ids

    def take(self, ids: list[str]) -> bool:
        """True (and forgets them) if every id is known unwatched; False: ask the database."""
        known = self._ids.issuperset(ids)
        self._ids.difference_update(ids)
        return known


def _shell(row: Any) -> Task:
    return Task(
        func=row["func"],
        id=row["id"],
        queue_name=row["queue"],
        priority=row["priority"],
        created_at=row["created_at"],
        result_ttl=row["result_ttl"],
        max_retries=max(0, row["max_attempts"] - 1),
        schedule_id=row["schedule_id"],
    )


class AsyncPostgresQueue(
    PgEnqueue,
    PgListing,
    PgScheduleStore,
    PgLimits,
    SupportsCancelSignal,
    SupportsProgress,
    SupportsDependencies,
    SupportsSchedules,
    SupportsWorkerRegistry,
    SupportsPurge,
):
    """Tasks in PostgreSQL: many workers on many hosts share one database.

    Connection options (besides the task-queue ones: ``project_name``, ``queues``,
    ``lease_timeout``, ``secret_key``, ``allow_dill``): ``dsn``/``url`` (``postgresql://...``),
    ``host``, ``port``, ``username`` (or ``user``), ``password``, ``database``, ``schema``
    (default ``omniq``, created and migrated on first connect), ``min_size``/``max_size`` (pool),
    ``ssl``, ``statement_cache_size``, ``command_timeout``, ``connect_timeout``.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._sql = queries()
        self._channel = channel_name("q", self.pg.schema, self.project_name)
        self._cancel_channel = channel_name("c", self.pg.schema, self.project_name)
        self._results_channel = channel_name("r", self.pg.schema, self.project_name)
        self._waiters = _QueueWaiters()
        self._unwatched = _Unwatched()
        staged = self._sql["enqueue_staged"]
        self._staged_plain = staged.replace("{conflict}", "")
        self._staged_skipping = staged.replace("{conflict}", "ON CONFLICT (project, id) DO NOTHING")
        self._claim_ids_sql = "\n".join(
            (self._sql["claim_ids"], self._sql["claim"].partition("\n)\n")[2])
        )
        self._listener = Listener(self.pg, self._channel, self._waiters.hear, self._waiters.reset)

    # -- lifecycle -------------------------------------------------------------------------
    async def _close(self) -> None:
        await self._listener.close()
        await super()._close()

    def create_result_storage(self) -> BaseResultStorage:
        from omniq.storage.postgres.results import AsyncPostgresResultStorage

        return AsyncPostgresResultStorage(
            project_name=self.project_name, serializer=self.serializer, **self.connection_options()
        )

    def stores_results_with(self, result_storage: BaseResultStorage | None) -> bool:
        """True for a PostgreSQL result storage on this database, schema and project:
        completions then store results in the same statement as the acknowledgements (encoded
        with the result storage's own serializer, so it always reads them back)."""
        from omniq.storage.postgres.results import AsyncPostgresResultStorage

        return (
            isinstance(result_storage, AsyncPostgresResultStorage)
            and self.same_database(result_storage)
            and result_storage.project_name == self.project_name
        )

    # -- rows <-> tasks --------------------------------------------------------------------
    def _task(self, row: Any) -> Task:
        """The task a row holds: the decoded payload with the row's state laid over it (a
        corrupt state raises CorruptRecord)."""
        return decoded_state(
            self.serializer, row["payload"], row["id"], lambda t: self._overlay(t, row)
        )

    def _view(self, row: Any) -> Task:
        """What readers see: a task whose payload cannot be decoded (poison, already DEAD) is
        still shown, from its columns, without its arguments; a corrupt record as DEAD with the
        reason (see ``record_view``)."""
        return record_view(
            self.serializer,
            row["payload"],
            lambda: _shell(row),
            row["id"],
            lambda t: self._overlay(t, row),
        )

    def _overlay(self, task: Task, row: Any) -> Task:
        task.status = TaskStatus(row["status"])
        task.queue_name = row["queue"]  # the column is what claims and counts go by
        for name in _STATE_COLUMNS:
            setattr(task, name, row[name])
        return lay_progress(self.serializer, task, row["progress"])

    # -- primitives ------------------------------------------------------------------------
    async def _claim(
        self, queues: list[str], limit: int, worker_id: str | None, lease: float, now: datetime
    ) -> tuple[list[Task], list[Task]]:
        SNAPSHOT.set(
            (id(self), self._listener.epoch if self._listener.alive else -1, self._waiters.heard)
        )
        _CLAIMED_AT.set(now)
        names = list(dict.fromkeys(queues))
        lease_until = now + timedelta(seconds=lease)
        claimed: list[Task] = []
        ended: list[Task] = []
        while len(claimed) < limit:
            wanted = limit - len(claimed)
            rows = await self.pool.fetch(
                self._sql["claim"], self.project_name, names, wanted, worker_id, now, lease_until
            )
            await self._take_rows(rows, now, claimed, ended)
            if len(rows) < wanted:
                break  # nothing more is ready; a full batch with tasks that ended goes round again
        return claimed, ended

    async def _take_rows(
        self, rows: list[Any], now: datetime, claimed: list[Task], ended: list[Task]
    ) -> None:
        """The rows a claim statement returned, in claim order: the claimed tasks, and those
        it ended instead (EXPIRED by their TTL; DEAD, buried here, with an undecodable
        payload)."""
        rows.sort(key=lambda r: (r["rank"], -r["priority"], r["ready_at"], r["seq"]))
        poison: list[tuple[Any, SerializationError]] = []
        for row in rows:
            if row["status"] == TaskStatus.EXPIRED:
                ended.append(self._view(row))
                continue
            try:
                claimed.append(self._task(row))
            except SerializationError as exc:
                poison.append((row, exc))
        if poison:
            buried = await self.pool.fetch(
                self._sql["bury"],
                self.project_name,
                [r["id"] for r, _ in poison],
                [r["claim"] for r, _ in poison],
                [str(exc) for _, exc in poison],
                now,
                [undecodable_kind(exc) for _, exc in poison],
            )
            ended.extend(self._view(r) for r in buried)

    async def _wait_and_claim(
        self,
        queues: list[str],
        limit: int,
        worker_id: str | None,
        lease: float,
        timeout: float,
        stop: asyncio.Event | None,
    ) -> tuple[list[Task], list[Task]] | None:
        """Waits, then, when all that woke it was one-task enqueues, claims those tasks by
        primary key (``claim_ids``) instead of searching the queues.

        Why that claims what the usual claim would: this wait follows a claim that found
        nothing ready, so what became ready since is what was announced since -- the tasks
        heard of by id, and delayed tasks that came due, which the statement looks for
        (finding one, it claims nothing and the caller claims the usual way). A notification
        naming only a queue, a listener reset or a lost snapshot also leave it to the usual
        claim. The gain: the search walks the claim index from the front of each queue, over
        the entries every claim leaves dead there until VACUUM; the key goes to the row."""
        snapshot = SNAPSHOT.get()
        since = _CLAIMED_AT.get()
        await self._wait_for_tasks(queues, timeout, stop)
        if (
            snapshot is None
            or since is None
            or snapshot[0] != id(self)
            or snapshot[1] != self._listener.epoch
            or (stop is not None and stop.is_set())
        ):
            return None
        ids = self._waiters.ids_since(queues, snapshot[2])
        if ids is None:
            return None
        now = utcnow()
        # the snapshot stays: if this returns only tasks it ended, the caller's next wait
        # returns at once and the ids not reached yet are claimed then
        rows = await self.pool.fetch(
            self._claim_ids_sql,
            self.project_name,
            list(dict.fromkeys(queues)),
            limit,
            worker_id,
            now,
            now + timedelta(seconds=lease),
            ids,
            since,
        )
        claimed: list[Task] = []
        ended: list[Task] = []
        await self._take_rows(rows, now, claimed, ended)
        if not claimed and not ended:
            return None  # taken by others, not ready yet, or a delayed task came due
        return claimed, ended

    async def _wait_for_tasks(
        self, queues: list[str], timeout: float, stop: asyncio.Event | None
    ) -> None:
        snapshot = SNAPSHOT.get()
        await self._listener.ensure()
        if (
            snapshot is None
            or snapshot[0] != id(self)
            or snapshot[1] != self._listener.epoch
            or self._waiters.heard_since(queues, snapshot[2])
        ):
            return  # something may have arrived since the caller's claim: let it look again

        async def until_next_due(timeout: float) -> float:
            next_due: datetime | None = await self.pool.fetchval(
                self._sql["next_due"], self.project_name, queues, utcnow()
            )
            if next_due is None:
                return timeout
            return min(timeout, max(0.0, (next_due - utcnow()).total_seconds()) + 0.001)

        # registered before its first await, so no notification can slip past from here on
        await self._waiters.wait(queues, timeout, stop, shorten=until_next_due)

    async def _heartbeat(
        self, claims: list[tuple[str, str]], lease: float, now: datetime
    ) -> dict[str, HeartbeatStatus]:
        rows = await self.pool.fetch(
            self._sql["heartbeat"],
            self.project_name,
            [task_id for task_id, _ in claims],
            [claim for _, claim in claims],
            now + timedelta(seconds=lease),
        )
        out = dict.fromkeys((task_id for task_id, _ in claims), HeartbeatStatus.LOST)
        for row in rows:
            out[row["id"]] = (
                HeartbeatStatus.CANCEL if row["cancel_requested"] else HeartbeatStatus.OK
            )
        return out

    async def _set_progress(self, items: list[tuple[str, str, bytes]]) -> list[bool]:
        rows = await self.pool.fetch(
            self._sql["set_progress"],
            self.project_name,
            [task_id for task_id, _, _ in items],
            [claim for _, claim, _ in items],
            [progress for _, _, progress in items],
        )
        written = {row["ord"] for row in rows}
        return [n in written for n in range(1, len(items) + 1)]

    async def _complete(
        self,
        completions: list[Completion],
        now: datetime,
        result_storage: BaseResultStorage | None,
    ) -> list[bool]:
        unique: dict[str, Completion] = {}
        for c in completions:  # the same task twice in a batch: only the first can succeed
            unique.setdefault(c.task_id, c)
        batch = list(unique.values())
        ids = [c.task_id for c in batch]
        claims = [c.claim for c in batch]
        if result_storage is not None:
            serializer = result_storage.serializer
            results = [c.result for c in batch]
            row = await self.pool.fetchrow(
                self._sql["complete_with_results"],
                self.project_name,
                ids,
                claims,
                now,
                [None if c.result is None else c.encoded_result(serializer) for c in batch],
                [None if r is None else r.status.value for r in results],
                [None if r is None else r.schedule_id for r in results],
                [None if r is None else r.finished_at for r in results],
                [None if r is None else r.expires_at for r in results],
                self._results_channel,
            )
            done = set(row["done"])
            waited_on = set(row["waited_on"])
        else:
            rows = await self.pool.fetch(self._sql["complete"], self.project_name, ids, claims, now)
            done = {r["id"] for r in rows}
            waited_on = {r["id"] for r in rows if r["waited_on"]}
        self._unwatched.note(done - waited_on)
        acks = []
        for c in completions:
            acks.append(c.task_id in done and unique.get(c.task_id) is c)
        return acks

    async def _fail(self, failure: Failure, now: datetime) -> Task | None:
        row = await self.pool.fetchrow(
            self._sql["fail"],
            self.project_name,
            failure.task_id,
            failure.claim,
            failure.status.value,
            failure.error_type,
            failure.error_message,
            failure.error_traceback,
            failure.retry_at,
            now,
            self._channel,
        )
        return None if row is None else self._view(row)

    async def _release(
        self, task_id: str, claim: str, now: datetime, eta: datetime | None = None
    ) -> Task | None:
        row = await self.pool.fetchrow(
            self._sql["release"], self.project_name, task_id, claim, now, self._channel, eta
        )
        return None if row is None else self._view(row)

    async def _cancel(self, task_id: str, now: datetime) -> Task | None:
        row = await self.pool.fetchrow(self._sql["cancel"], self.project_name, task_id, now)
        if row is None:  # finished already (returned as it is) or unknown (None)
            row = await self.pool.fetchrow(self._sql["get_task"], self.project_name, task_id)
        return None if row is None else self._view(row)

    async def _promote(self, task_ids: list[str], now: datetime) -> list[Task]:
        rows = await self.pool.fetch(
            self._sql["promote"], self.project_name, task_ids, self._channel
        )
        return [self._view(r) for r in rows]

    async def _cancel_waiting(self, items: list[tuple[str, str]], now: datetime) -> list[Task]:
        rows = await self.pool.fetch(
            self._sql["cancel_waiting"],
            self.project_name,
            [task_id for task_id, _ in items],
            [reason for _, reason in items],
            now,
        )
        return [self._view(r) for r in rows]

    async def _dependents(self, task_ids: list[str]) -> list[Task]:
        if self._unwatched.take(task_ids):
            return []  # just acknowledged, and nobody depends on them: no round trip
        rows = await self.pool.fetch(self._sql["dependents"], self.project_name, task_ids)
        return [self._view(r) for r in rows]

    async def _get_tasks(self, task_ids: list[str]) -> dict[str, Task]:
        rows = await self.pool.fetch(self._sql["get_tasks"], self.project_name, task_ids)
        return {r["id"]: self._view(r) for r in rows}

    async def _requeue(self, task_id: str, reset_attempts: bool, now: datetime) -> Task | None:
        row = await self.pool.fetchrow(
            self._sql["requeue"], self.project_name, task_id, reset_attempts, self._channel
        )
        return None if row is None else self._view(row)

    async def _recover_expired(self, now: datetime) -> list[Task]:
        rows = await self.pool.fetch(
            self._sql["recover_expired"], self.project_name, now, self._channel
        )
        return [self._view(r) for r in rows]

    async def _expire(self, now: datetime) -> list[Task]:
        rows = await self.pool.fetch(self._sql["expire"], self.project_name, now)
        return [self._view(r) for r in rows]

    async def _get_task(self, task_id: str) -> Task | None:
        row = await self.pool.fetchrow(self._sql["get_task"], self.project_name, task_id)
        return None if row is None else self._view(row)

    async def _queue_size(self, queue: str) -> int:
        count: int = await self.pool.fetchval(self._sql["queue_size"], self.project_name, queue)
        return count

    async def _stats(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        rows = await self.pool.fetch(self._sql["stats"], self.project_name)
        for row in rows:
            if row["n"]:
                out.setdefault(row["queue"], {})[row["status"]] = row["n"]
        if rows and max(row["shards"] for row in rows) > _FOLD_AFTER:
            await self.pool.execute(self._sql["fold_counts"], self.project_name)
        return out

    async def _purge(self, queue: str | None, statuses: frozenset[TaskStatus]) -> int:
        count: int = await self.pool.fetchval(
            self._sql["purge"], self.project_name, queue, sorted(statuses)
        )
        return count

    # -- the worker registry ---------------------------------------------------------------
    async def _save_worker(self, worker_id: str, payload: bytes, expires_at: datetime) -> None:
        await self.pool.execute(
            self._sql["save_worker"], self.project_name, worker_id, expires_at, payload
        )

    async def _list_workers(self, now: datetime) -> list[bytes]:
        rows = await self.pool.fetch(self._sql["list_workers"], self.project_name, now)
        return [bytes(r["payload"]) for r in rows]

    async def _delete_worker(self, worker_id: str) -> bool:
        gone = await self.pool.fetchval(self._sql["delete_worker"], self.project_name, worker_id)
        return gone is not None

    async def _health(self) -> dict[str, Any]:
        details = await super()._health()
        return {**details, "listening": self._listener.alive}

    # -- cancel signal: NOTIFY on the project's cancel channel -----------------------------
    async def _signal_cancel(self, task_id: str) -> None:
        await self.pool.execute("SELECT pg_notify($1, $2)", self._cancel_channel, task_id)

    @contextlib.asynccontextmanager
    async def _listen_cancels(self, deliver: Callable[[str], None]) -> AsyncIterator[None]:
        listener = Listener(self.pg, self._cancel_channel, deliver, lambda: None)

        async def keep() -> None:
            # a lost LISTEN connection is re-established; what was published meanwhile is seen
            # at the workers' next heartbeat; said once per outage, not at every attempt
            failing = False
            while True:
                try:
                    await listener.ensure()
                    failing = False
                except Exception as exc:
                    log.log(
                        logging.DEBUG if failing else logging.WARNING,
                        "cancel channel: cannot LISTEN (%s); retrying",
                        exc,
                    )
                    failing = True
                await idle(1.0)

        await listener.ensure()
        keeper = asyncio.create_task(keep(), name="omniq-pg-cancels")
        try:
            yield
        finally:
            await cancel_and_wait(keeper)
            await listener.close()


class PostgresQueue(SyncWrapper, async_class=AsyncPostgresQueue):
    """Blocking API of :class:`AsyncPostgresQueue`."""


__all__ = ["AsyncPostgresQueue", "PostgresQueue"]
