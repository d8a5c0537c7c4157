"""The Redis task queue: every multi-step change is one Lua script (``lua/*.lua``), run by SHA.

Keys, under ``B = <tasks_prefix>:{<project>}`` (one Cluster slot, see ``_conn``):

- ``B:task:<id>`` hash: payload ``p`` (the task envelope) and state fields outside it (status,
  attempts, claim, lease, times in microseconds, errors) laid back over the decoded task;
- ``B:ready:<queue>`` sorted set, all scores 0, members ordered as bytes: priority descending,
  ready time, enqueue sequence, then the id, as fixed-width numbers. Lexicographic members keep
  the order exact where one float score could not (priority, microseconds and sequence need
  more than the 53 bits of a double);
- ``B:delayed:<queue>`` sorted set by eta: claims move due tasks to the ready set first;
- ``B:leases`` sorted set by lease deadline: running tasks; ``recover_expired`` reads its head;
- ``B:idx:<queue>:<status>`` sorted sets by enqueue sequence (listing, counts), ``B:all``,
  ``B:queues``, ``B:expiry`` (pending tasks with a TTL), ``B:finished`` (trimmed to
  ``max_finished``, oldest first);
- ``B:deps:<id>`` set: the WAITING tasks that name task ``<id>`` in ``depends_on``, dropped once
  ``<id>`` is final and its dependents were read; ``B:workers`` hash and ``B:workers:exp``
  sorted set: the worker registry;
- ``B:wake:<queue>`` short list: every enqueue, retry or recovery pushes a token; idle claimers
  block on BLPOP over the lists of their queues, so a token pushed between an empty claim and
  the BLPOP is still there (nothing is lost, nothing polls); the claim is pipelined behind the
  BLPOP, so it comes back with the wake-up (``_wake``). ``B:wakestop:<token>``: the list one
  such wait also watches, pushed to end it;
- ``B:sched:<id>`` hashes with ``B:scheds`` and ``B:sched_due`` for schedules;
- ``B:stage:<token>:<n>`` lists: the pieces of a large batch until its commit (``_enqueue``).

The parts live beside this module: rows into tasks (``_rows``), enqueue (``_enqueue``), waiting
and claiming with the wake-up (``_wake``) and schedules (``_schedules``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

from omniq._aio import cancel_and_wait, idle, raise_if_cancelled
from omniq._sync import SyncWrapper
from omniq._time import utcnow
from omniq.config import get_logger
from omniq.models.task import Task, TaskStatus
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
)
from omniq.storage.base.listing import cursor_gone
from omniq.storage.redis._conn import (
    Client,
    Script,
    as_bytes,
    done,
    flags_merge,
    key_base,
    opt_us,
    pxat_ms,
    register,
    split_connection_options,
    to_us,
)
from omniq.storage.redis._enqueue import RedisEnqueue, commit_merge, enqueue_args
from omniq.storage.redis._limits import RedisLimits
from omniq.storage.redis._rows import CHUNK, ROW_FIELDS
from omniq.storage.redis._schedules import RedisSchedules
from omniq.storage.redis._scripts import NOT_SENT, SyncLane, sync_lane
from omniq.storage.redis._wake import RedisWakeClaims
from omniq.storage.redis.results import AsyncRedisResultStorage

#: Scripts of the task queue, each preceded by the shared helpers.
_SCRIPTS = (
    "enqueue",
    "stage",
    "claim",
    "heartbeat",
    "fail",
    "release",
    "cancel",
    "requeue",
    "recover",
    "expire",
    "purge",
    "list",
    "stats",
    "schedule_write",
    "schedule_read",
    "schedule_delete",
    "promote",
    "cancel_waiting",
    "dependents",
    "rows",
    "workers",
    "progress",
    "limits",
)
_STATUSES = [s.value for s in TaskStatus]
#: Bound of the ids remembered as having no dependents (see ``_dependents``).
_NO_DEPENDENTS_CAP = 100_000
_HEARTBEAT = {b"ok": HeartbeatStatus.OK, b"cancel": HeartbeatStatus.CANCEL}

log = get_logger("storage.redis")


def _opt_text(value: str | None) -> str:
    """'' for None, '=text' for text (so an empty message stays distinct from None)."""
    return "" if value is None else f"={value}"


class AsyncRedisQueue(
    RedisEnqueue,
    RedisWakeClaims,
    RedisSchedules,
    RedisLimits,
    SupportsCancelSignal,
    SupportsProgress,
    SupportsDependencies,
    SupportsSchedules,
    SupportsWorkerRegistry,
    SupportsPurge,
):
    """Tasks in Redis, shared by any number of worker processes and hosts.

    Accepts every option of :class:`omniq.models.config.RedisConfig` (so one config serves all
    three components): the connection (or ``url``), ``tasks_prefix`` for its keys,
    ``results_prefix`` for the result storage it creates by default (``events_prefix`` is not
    used here); then ``max_finished`` (finished tasks kept for inspection, oldest dropped
    first) and the options of every task queue (``project_name``, ``queues``,
    ``lease_timeout``...).
    """

    backend_name = "redis"
    is_local = False

    def __init__(
        self,
        *,
        tasks_prefix: str = "omniq:tasks",
        results_prefix: str = "omniq:results",
        events_prefix: str = "omniq:events",
        max_finished: int = 100_000,
        **options: Any,
    ) -> None:
        connection, rest = split_connection_options(options)
        super().__init__(**rest)
        self._init_redis(connection)
        if isinstance(max_finished, bool) or not isinstance(max_finished, int) or max_finished < 0:
            raise ValueError(f"max_finished must be an int >= 0, got {max_finished!r}")
        self.max_finished = max_finished
        self.tasks_prefix = tasks_prefix
        self.results_prefix = results_prefix
        self._base = key_base(tasks_prefix, self.project_name, option="tasks_prefix")
        self._cancel_channel = f"{self._base}:cancels"
        key_base(results_prefix, self.project_name, option="results_prefix")
        self._scripts = {}
        self._complete_script: Script | None = None
        self._blocking: Client | None = None
        self._sync_lane: SyncLane | None = None
        # earliest delayed eta (us) seen by the last empty claim of a queue list: bounds the wait
        self._next_due: dict[tuple[str, ...], int | None] = {}
        # ids acknowledged while nothing waited on them (the completion script says so): the
        # base asks for their dependents right after, and the answer is known without a call
        self._no_dependents: set[str] = set()

    def __repr__(self) -> str:
        return (
            f"AsyncRedisQueue(server={self._conn.describe()!r}, project_name="
            f"{self.project_name!r}, queues={self.queues!r})"
        )

    # -- connection ------------------------------------------------------------------------
    async def _connect(self) -> None:
        client = await self._open_client()
        self._scripts = {name: register(client, "tasks_lib", name) for name in _SCRIPTS}
        # what an acknowledged enqueue or acknowledgement promises: on wait_replicas replicas
        self._scripts["enqueue"] = self._durable(client, "tasks_lib", "enqueue", merge=commit_merge)
        self._complete_script = self._durable(
            client, "tasks_lib", "results_lib", "complete", merge=flags_merge
        )
        self._blocking = self._conn.blocking_client()
        self._sync_lane = sync_lane(client)

    async def _close(self) -> None:
        self._sync_lane = None
        blocking, self._blocking = self._blocking, None
        if blocking is not None:
            await blocking.aclose()
        await self._close_client()

    async def _health(self) -> dict[str, Any]:
        return await self._redis_health()

    def create_result_storage(self) -> BaseResultStorage:
        return AsyncRedisResultStorage(
            project_name=self.project_name,
            serializer=self.serializer,
            results_prefix=self.results_prefix,
            **self._connection_options,
        )

    def stores_results_with(self, result_storage: BaseResultStorage | None) -> bool:
        """True for a Redis result storage of this project on the same server and database:
        its keys share this queue's hash slot, so the completion script writes both."""
        return (
            isinstance(result_storage, AsyncRedisResultStorage)
            and result_storage.project_name == self.project_name
            and result_storage._conn.target == self._conn.target
        )

    # -- primitives ------------------------------------------------------------------------
    def _enqueue_blocking(self, items: list[tuple[Task, bytes]]) -> list[bool] | None:
        """One enqueue script call on the blocking lane, once the script is known to be loaded
        as a function (the asyncio way loads it, stages large batches and waits for replicas)."""
        lane = self._sync_lane
        script = self._scripts.get("enqueue")
        if lane is None or script is None or not script.functions or len(items) > CHUNK:
            return None
        if script.replicas:
            return None
        args = enqueue_args(items)
        flags = lane.call(
            "FCALL",
            script.function,
            1,
            self._base,
            to_us(utcnow()),
            self.max_finished,
            "",
            0,
            *args,
        )
        if flags is NOT_SENT or not isinstance(flags, list):
            return None
        return [bool(flag) for flag in flags]

    async def _claim(
        self, queues: list[str], limit: int, worker_id: str | None, lease: float, now: datetime
    ) -> tuple[list[Task], list[Task]]:
        lease_until = to_us(now + timedelta(seconds=lease))
        claimed: list[Task] = []
        ended: list[Task] = []
        while True:
            next_due, claimed_rows, ended_rows = await self._run(
                "claim",
                now,
                lease_until,
                worker_id or "",
                limit - len(claimed),
                secrets.token_hex(4),
                len(queues),
                *queues,
            )
            self._next_due[tuple(queues)] = int(next_due) if next_due is not None else None
            got, lost, poisoned = await self._take(claimed_rows, ended_rows, now)
            claimed += got
            ended += lost
            # a poison task took a place in this claim: claim again for the places left
            if not poisoned or len(claimed) >= limit:
                return claimed, ended

    async def _heartbeat(
        self, claims: list[tuple[str, str]], lease: float, now: datetime
    ) -> dict[str, HeartbeatStatus]:
        args: list[Any] = [to_us(now + timedelta(seconds=lease)), len(claims)]
        for task_id, claim in claims:
            args += (task_id, claim)
        states = await self._run("heartbeat", now, *args)
        return {
            task_id: _HEARTBEAT.get(state, HeartbeatStatus.LOST)
            for (task_id, _), state in zip(claims, states, strict=True)
        }

    async def _set_progress(self, items: list[tuple[str, str, bytes]]) -> list[bool]:
        args: list[Any] = [len(items)]
        for item in items:
            args += item
        flags = await self._run("progress", utcnow(), *args)
        return [bool(flag) for flag in flags]

    async def _complete(
        self,
        completions: list[Completion],
        now: datetime,
        result_storage: BaseResultStorage | None,
    ) -> list[bool]:
        paired = result_storage if isinstance(result_storage, AsyncRedisResultStorage) else None
        keys = [self._base] if paired is None else [self._base, paired._base]
        args: list[Any] = [to_us(now), self.max_finished, len(completions)]
        for c in completions:
            result = c.result
            if paired is None or result is None:
                args += (c.task_id, c.claim, "", "", "", "")
                continue
            expires = result.expires_at
            args += (
                c.task_id,
                c.claim,
                c.encoded_result(paired.serializer),
                pxat_ms(expires) if expires is not None else "",
                to_us(expires) if expires is not None else "",
                result.schedule_id or "",
            )
        assert self._complete_script is not None, "connected queues have their scripts"
        acks = await self._complete_script(keys=keys, args=args)
        if len(self._no_dependents) > _NO_DEPENDENTS_CAP:  # only if _dependents never came
            self._no_dependents.clear()
        for c, ack in zip(completions, acks, strict=True):
            if ack == 1:
                self._no_dependents.add(c.task_id)
            else:  # a task acknowledged again (after a requeue) may be waited on this time
                self._no_dependents.discard(c.task_id)
        return [bool(ack) for ack in acks]

    async def _fail(self, failure: Failure, now: datetime) -> Task | None:
        row = await self._run(
            "fail",
            now,
            failure.task_id,
            failure.claim,
            failure.status.value,
            _opt_text(failure.error_type),
            _opt_text(failure.error_message),
            _opt_text(failure.error_traceback),
            opt_us(failure.retry_at),
        )
        return None if row is None else self._view(row)

    async def _release(
        self, task_id: str, claim: str, now: datetime, eta: datetime | None = None
    ) -> Task | None:
        row = await self._run("release", now, task_id, claim, opt_us(eta))
        return None if row is None else self._view(row)

    async def _cancel(self, task_id: str, now: datetime) -> Task | None:
        row = await self._run("cancel", now, task_id)
        return None if row is None else self._view(row)

    async def _promote(self, task_ids: list[str], now: datetime) -> list[Task]:
        rows = await self._run("promote", now, *task_ids)
        return [self._view(row) for row in rows]

    async def _cancel_waiting(self, items: list[tuple[str, str]], now: datetime) -> list[Task]:
        rows = await self._run("cancel_waiting", now, *(v for item in items for v in item))
        return [self._view(row) for row in rows]

    async def _dependents(self, task_ids: list[str]) -> list[Task]:
        """One script call over the B:deps sets, and none at all for tasks the completion
        script already found nobody waiting on: the usual case of an acknowledgement batch."""
        known = self._no_dependents
        asked = [i for i in task_ids if i not in known]
        known.difference_update(task_ids)
        if not asked:
            return []
        rows = await self._run("dependents", utcnow(), *asked)
        return [self._view(row) for row in rows]

    async def _get_tasks(self, task_ids: list[str]) -> dict[str, Task]:
        rows = await self._run("rows", utcnow(), *task_ids) if task_ids else []
        return {task.id: task for task in map(self._view, rows)}

    async def _save_worker(self, worker_id: str, payload: bytes, expires_at: datetime) -> None:
        await self._run("workers", utcnow(), "save", worker_id, payload, to_us(expires_at))

    async def _list_workers(self, now: datetime) -> list[bytes]:
        return [as_bytes(p) for p in await self._run("workers", now, "list")]

    async def _delete_worker(self, worker_id: str) -> bool:
        return bool(await self._run("workers", utcnow(), "delete", worker_id))

    async def _requeue(self, task_id: str, reset_attempts: bool, now: datetime) -> Task | None:
        row = await self._run("requeue", now, task_id, "1" if reset_attempts else "0")
        return None if row is None else self._view(row)

    async def _sweep(self, name: str, now: datetime) -> list[Task]:
        """Runs a chunked sweep script until it has looked at everything that is due."""
        tasks: list[Task] = []
        while True:
            looked_at, rows = await self._run(name, now, CHUNK)
            tasks += (self._view(row) for row in rows)
            if looked_at < CHUNK:
                return tasks

    async def _recover_expired(self, now: datetime) -> list[Task]:
        return await self._sweep("recover", now)

    async def _expire(self, now: datetime) -> list[Task]:
        return await self._sweep("expire", now)

    async def _get_task(self, task_id: str) -> Task | None:
        fields = await done(self.redis.hmget(f"{self._base}:task:{task_id}", list(ROW_FIELDS)))
        if fields[1] is None:
            return None
        return self._view([task_id, *fields])

    async def _list_tasks(
        self,
        queue: str | None,
        status: TaskStatus | None,
        limit: int,
        offset: int,
        after: str | None = None,
        descending: bool = False,
    ) -> list[Task]:
        rows = await self._run(
            "list",
            utcnow(),
            queue or "",
            status.value if status else "",
            offset,
            limit,
            after or "",
            "1" if descending else "0",
        )
        if rows is None:
            raise cursor_gone(after or "")
        return [self._view(row) for row in rows]

    async def _queue_size(self, queue: str) -> int:
        size: int = await self.redis.zcard(f"{self._base}:idx:{queue}:pending")
        return size

    async def _stats(self) -> dict[str, dict[str, int]]:
        flat = await self._run("stats", utcnow())
        stats: dict[str, dict[str, int]] = {}
        width = len(_STATUSES) + 1
        for i in range(0, len(flat), width):
            counts = {
                s: int(n) for s, n in zip(_STATUSES, flat[i + 1 : i + width], strict=True) if n
            }
            if counts:
                stats[flat[i].decode()] = counts
        return stats

    async def _purge(self, queue: str | None, statuses: frozenset[TaskStatus]) -> int:
        total = 0
        while True:
            # a bounded step per call; a call that found less than a chunk left nothing behind
            count = int(await self._run("purge", utcnow(), queue or "", CHUNK, *statuses))
            total += count
            if count < CHUNK:
                return total

    # -- cancel signal: PUBLISH on the project's cancel channel -----------------------------
    async def _signal_cancel(self, task_id: str) -> None:
        # PUBLISH reaches every node of a Cluster; its async client has no publish() helper
        await done(self.redis.execute_command("PUBLISH", self._cancel_channel, task_id))

    @contextlib.asynccontextmanager
    async def _listen_cancels(self, deliver: Callable[[str], None]) -> AsyncIterator[None]:
        subscribed = asyncio.Event()
        lost = False  # said once per outage, not at every resubscription attempt

        async def read() -> None:
            nonlocal lost
            while True:
                client = pubsub = None
                try:
                    client = await self._conn.subscriber(self._cancel_channel)
                    pubsub = client.pubsub()
                    await pubsub.subscribe(self._cancel_channel)
                    subscribed.set()
                    lost = False
                    while True:
                        raise_if_cancelled()  # get_message may swallow a cancel
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=1.0
                        )
                        if message is not None and message["type"] == "message":
                            data = message["data"]
                            deliver(data.decode() if isinstance(data, bytes) else str(data))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # missed meanwhile: seen at the next heartbeat
                    log.log(
                        logging.DEBUG if lost else logging.WARNING,
                        "cancel subscription lost (%s); resubscribing",
                        exc,
                    )
                    lost = True
                    await idle(1.0)
                finally:
                    if pubsub is not None:
                        with contextlib.suppress(Exception):
                            await pubsub.aclose()  # type: ignore[no-untyped-call]
                    if client is not None:
                        with contextlib.suppress(Exception):
                            await client.aclose()

        reader = asyncio.create_task(read(), name="omniq-redis-cancels")
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for loses a cancel that lands as the
            # wait ends, and a worker's cancel listener then outlives asyncio.run's one cancel
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await subscribed.wait()
            yield
        finally:
            await cancel_and_wait(reader)


class RedisQueue(SyncWrapper, async_class=AsyncRedisQueue):
    """Blocking API of :class:`AsyncRedisQueue`."""


__all__ = ["AsyncRedisQueue", "RedisQueue"]
