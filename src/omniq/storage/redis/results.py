"""Redis result storage: one key per result with native expiry, waits woken by pub/sub.

Keys, under ``R = <results_prefix>:{<project>}``: ``R:result:<task_id>`` (the result envelope,
with PEXPIREAT when it has a TTL), ``R:latest:<schedule_id>`` (the task id of a schedule's last
result), ``R:expiry`` (sorted set of results with a TTL by expiry, so ``cleanup()`` can count
them) and the channel ``R:done``, where every write publishes the ids it stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, NamedTuple

from omniq._aio import idle, raise_if_cancelled
from omniq._sync import SyncWrapper
from omniq._time import utcnow
from omniq.exceptions import BackendUnavailable
from omniq.models.result import TaskResult
from omniq.storage._outages import OutageLog, wait_through_outages
from omniq.storage.base import BaseResultStorage
from omniq.storage.redis._conn import (
    TRANSIENT,
    Client,
    RedisComponent,
    RedisConnection,
    RedisConnectionError,
    Script,
    aioredis,
    as_bytes,
    key_base,
    pxat_ms,
    register,
    split_connection_options,
    to_us,
)

log = logging.getLogger("omniq.storage.redis")

_CHUNK = 1000
_RECONNECT_DELAY = 0.5
#: Recent ids (and notes of GETs that missed) remembered by the waiters; see _ResultWaiters.
_SEEN = 8192
#: How long a payload brought by a message stays usable for the woken waiter's ``get``.
_PAYLOAD_TTL = 1.0
#: Seconds without any waiter after which a storage leaves its subscription.
_IDLE_UNSUBSCRIBE = 60.0
#: A subscription silent this long is PINGed; one that does not answer within as long again
#: is on a hung server (alive for TCP, answering nothing) and is left for a new one.
_SILENCE = 2.0


class _BatchedGet:
    """Concurrent GETs become MGETs: callers queue their key, and a few drainer tasks send what
    is queued in batches. Thousands of callers at once (``gather`` over ``get_result``) then
    cost a few round trips instead of one each; a lone caller pays one loop tick."""

    _DRAINERS = 4

    def __init__(self, client: Callable[[], Client]) -> None:
        self._client = client
        self._pending: dict[str, list[asyncio.Future[bytes | None]]] = {}
        self._drainers: set[asyncio.Task[None]] = set()

    async def get(self, key: str) -> bytes | None:
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(key, []).append(future)
        if len(self._drainers) < self._DRAINERS:
            self._drainers.add(asyncio.create_task(self._drain()))
        return await future

    async def _drain(self) -> None:
        me = asyncio.current_task()
        try:
            await self._drain_pending()
        finally:
            # leave the set in the very step that saw nothing pending: a drainer that had ended
            # but still counted (a done callback runs a loop turn later) kept a GET queued in
            # between from starting one, and that get_result waited for ever
            if me is not None:
                self._drainers.discard(me)

    async def _drain_pending(self) -> None:
        while self._pending:
            keys = list(itertools.islice(self._pending, _CHUNK))
            batch = {key: self._pending.pop(key) for key in keys}
            try:
                values = await self._client().mget(keys)
            except asyncio.CancelledError:
                for futures in batch.values():
                    for future in futures:
                        future.cancel()
                raise
            except Exception as exc:
                for futures in batch.values():
                    for future in futures:
                        if not future.done():
                            future.set_exception(exc)
                continue
            for futures, value in zip(batch.values(), values, strict=True):
                for future in futures:
                    if not future.done():
                        future.set_result(None if value is None else as_bytes(value))


class _Token(NamedTuple):
    """Where the subscription stood when a GET was sent: its generation and the ids seen."""

    generation: int
    seen: int


def _records(data: bytes) -> Iterator[tuple[str, bytes]]:
    """The (task id, payload) records of one ``R:done`` message (see results_lib.lua)."""
    view, i = memoryview(data), 0
    while i < len(view):
        n = int.from_bytes(view[i : i + 4], "big")
        task_id = bytes(view[i + 4 : i + 4 + n]).decode()
        i += 4 + n
        m = int.from_bytes(view[i : i + 4], "big")
        yield task_id, bytes(view[i + 4 : i + 4 + m])
        i += 4 + m


class _ResultWaiters:
    """One subscription to ``R:done`` per storage, shared by every waiter of this process.

    A waiter registers its future before anything else. If the GET that just missed was sent
    while the subscription was up (a :class:`_Token` says so) and it stayed up since, a result
    written after that GET can only arrive as a message: either already received (the ids seen
    since the token are remembered) or still to come (it wakes the future); no round trip is
    needed. Otherwise the waiter waits for the subscription to be confirmed and checks with a
    GET. When the subscription drops and comes back, every waiter is woken to check again.
    Messages carry small payloads, kept for a moment for the woken waiter's next ``get``.
    """

    def __init__(self, connection: RedisConnection, channel: str) -> None:
        self._connection = connection
        self._channel = channel
        self._futures: dict[str, set[asyncio.Future[None]]] = {}
        self._live: asyncio.Event | None = None
        self._reader: asyncio.Task[None] | None = None
        self._generation = 0  # bumped at every confirmed (re)subscription
        self._count = 0  # ids received so far
        self._seen: dict[str, int] = {}  # the last _SEEN ids received -> their number
        self._misses: dict[str, _Token] = {}
        self._payloads: dict[str, tuple[bytes, float]] = {}
        self._outage = OutageLog(log, f"Redis at {connection.describe()}")

    # -- registration ----------------------------------------------------------------------
    def add(self, task_id: str) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._futures.setdefault(task_id, set()).add(future)
        return future

    def remove(self, task_id: str, future: asyncio.Future[None]) -> None:
        futures = self._futures.get(task_id)
        if futures is not None:
            futures.discard(future)
            if not futures:
                del self._futures[task_id]

    def token(self) -> _Token | None:
        live = self._live is not None and self._live.is_set()
        return _Token(self._generation, self._count) if live else None

    def note_miss(self, task_id: str, token: _Token) -> None:
        self._misses[task_id] = token
        if len(self._misses) > _SEEN:
            del self._misses[next(iter(self._misses))]

    def arrived_since_miss(self, task_id: str) -> bool | None:
        """True: a result for ``task_id`` arrived since its last GET missed; False: none did and
        none can have been missed; None: unknown (check with a GET)."""
        token = self._misses.pop(task_id, None)
        if (
            token is None
            or token.generation != self._generation
            or self.token() is None
            or self._count - token.seen > _SEEN
        ):
            return None
        return self._seen.get(task_id, 0) > token.seen

    def take(self, task_id: str) -> bytes | None:
        """The payload a message brought for a waiter, if fresh."""
        entry = self._payloads.pop(task_id, None)
        if entry is None or time.monotonic() - entry[1] > _PAYLOAD_TTL:
            return None
        return entry[0]

    def forget(self, task_id: str) -> None:
        self._payloads.pop(task_id, None)

    async def live(self) -> None:
        """Returns once the subscription is confirmed by the server (subscribing if needed)."""
        if self._reader is None or self._reader.done():
            self._live = asyncio.Event()
            self._reader = asyncio.create_task(self._read(self._live), name="omniq-redis-results")
        assert self._live is not None
        await self._live.wait()

    # -- messages --------------------------------------------------------------------------
    def _wake_all(self) -> None:
        for futures in self._futures.values():
            for future in futures:
                if not future.done():
                    future.set_result(None)

    def _received(self, data: bytes) -> None:
        now = time.monotonic()
        for task_id, payload in _records(data):
            self._count += 1
            self._seen.pop(task_id, None)
            self._seen[task_id] = self._count
            futures = self._futures.get(task_id)
            if not futures:
                continue
            if payload:
                self._payloads[task_id] = (payload, now)
            for future in futures:
                if not future.done():
                    future.set_result(None)
        while len(self._seen) > _SEEN:
            del self._seen[next(iter(self._seen))]
        while len(self._payloads) > _SEEN:
            del self._payloads[next(iter(self._payloads))]

    async def _read(self, live: asyncio.Event) -> None:
        """Holds the subscription while anyone waits; leaves it after a minute without waiters,
        so a process that waited once does not receive every result of the project forever."""
        resubscribed = False
        while True:
            client: aioredis.Redis | None = None
            pubsub = None
            try:
                client = await self._connection.subscriber(self._channel)
                pubsub = client.pubsub()
                await pubsub.subscribe(self._channel)
                idle_since: float | None = None
                heard = time.monotonic()
                pinged = False
                while True:
                    raise_if_cancelled()  # get_message may swallow a cancel
                    message = await pubsub.get_message(timeout=1.0)
                    now = time.monotonic()
                    if message is not None:
                        heard, pinged = now, False
                    elif now - heard > 2 * _SILENCE and pinged:
                        raise RedisConnectionError(
                            f"no answer to a PING for {now - heard:.1f}s (server hung?)"
                        )
                    elif now - heard > _SILENCE and not pinged:
                        await pubsub.ping()
                        pinged = True
                    if message is None:
                        if self._futures:
                            idle_since = None
                        elif idle_since is None:
                            idle_since = time.monotonic()
                        elif time.monotonic() - idle_since > _IDLE_UNSUBSCRIBE:
                            # no waiter can be inside live() now (each registers first), and
                            # the next one starts a new reader: decided without an await
                            self._reader = self._live = None
                            return
                    elif message["type"] == "message":
                        self._received(message["data"])
                    elif message["type"] == "subscribe":
                        self._outage.over()
                        self._generation += 1
                        live.set()
                        if resubscribed:
                            # a message may have been lost meanwhile: every waiter checks
                            # (at the first subscription they all check after live() anyway)
                            self._wake_all()
                        resubscribed = True
            except Exception as exc:  # connection trouble: resubscribe after a pause
                self._outage.begin(f"result subscription lost: {type(exc).__name__}: {exc}")
            finally:
                live.clear()
                self._wake_all()
                with contextlib.suppress(Exception):
                    if pubsub is not None:
                        await pubsub.aclose()  # type: ignore[no-untyped-call]
                    if client is not None:
                        await client.aclose()
            await idle(_RECONNECT_DELAY)

    async def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        self._wake_all()


class AsyncRedisResultStorage(RedisComponent, BaseResultStorage):
    """Results in Redis: native expiry for ``ttl``, waits woken by pub/sub (never polled).

    Accepts every option of :class:`omniq.models.config.RedisConfig` (the connection or
    ``url``, ``results_prefix``; the other prefixes are not used here) and the options of every
    result storage (``project_name``...).
    """

    backend_name = "redis"
    is_local = False

    def __init__(
        self,
        *,
        results_prefix: str = "omniq:results",
        tasks_prefix: str = "omniq:tasks",
        events_prefix: str = "omniq:events",
        **options: Any,
    ) -> None:
        connection, rest = split_connection_options(options)
        super().__init__(**rest)
        self._init_redis(connection)
        self.results_prefix = results_prefix
        self._base = key_base(results_prefix, self.project_name, option="results_prefix")
        self._scripts: dict[str, Script] = {}
        self._waiters = _ResultWaiters(self._conn, f"{self._base}:done")
        self._batched = _BatchedGet(lambda: self.redis)

    def __repr__(self) -> str:
        return (
            f"AsyncRedisResultStorage(server={self._conn.describe()!r}, "
            f"project_name={self.project_name!r})"
        )

    def _key(self, task_id: str) -> str:
        return f"{self._base}:result:{task_id}"

    async def _connect(self) -> None:
        client = await self._open_client()
        self._scripts = {
            "set": self._durable(client, "results_lib", "results_set"),
            "cleanup": register(client, "results_cleanup"),
        }

    async def _close(self) -> None:
        await self._waiters.close()
        await self._close_client()

    async def _health(self) -> dict[str, Any]:
        return await self._redis_health()

    async def _set_many(self, items: list[tuple[TaskResult, bytes]]) -> None:
        now = to_us(utcnow())
        for result, _ in items:
            self._waiters.forget(result.task_id)
        for start in range(0, len(items), _CHUNK):
            chunk = items[start : start + _CHUNK]
            args: list[Any] = [now, len(chunk)]
            for result, payload in chunk:
                expires = result.expires_at
                args += (
                    result.task_id,
                    payload,
                    pxat_ms(expires) if expires is not None else "",
                    to_us(expires) if expires is not None else "",
                    result.schedule_id or "",
                )
            await self._scripts["set"](keys=[self._base], args=args)

    async def _get(self, task_id: str) -> TaskResult | None:
        payload = self._waiters.take(task_id)
        if payload is None:
            token = self._waiters.token()
            payload = await self._batched.get(self._key(task_id))
            if payload is None:
                if token is not None:
                    self._waiters.note_miss(task_id, token)
                return None
        return self.serializer.decode_result(payload, task_id)

    async def _get_many(self, task_ids: list[str]) -> dict[str, TaskResult]:
        found: dict[str, TaskResult] = {}
        for start in range(0, len(task_ids), _CHUNK):
            chunk = task_ids[start : start + _CHUNK]
            payloads = await self.redis.mget([self._key(t) for t in chunk])
            for task_id, payload in zip(chunk, payloads, strict=True):
                if payload is not None:
                    found[task_id] = self.serializer.decode_result(as_bytes(payload), task_id)
        return found

    async def wait(self, task_id: str, timeout: float | None = None) -> TaskResult | None:
        """As every store's ``wait``, and it keeps waiting across a failover: a read that fails
        because the server is gone, hung or being replaced is tried again with backoff until
        the caller's own timeout (see :func:`~omniq.storage._outages.wait_through_outages`).
        Before, every waiter raised ConnectionError within 0.1 s of a kill."""
        return await wait_through_outages(
            lambda remaining: super(AsyncRedisResultStorage, self).wait(task_id, remaining),
            timeout,
            # BackendUnavailable is OmniQ's own verdict (not connected, closed): no retry
            # changes it
            transient=lambda exc: (
                isinstance(exc, TRANSIENT) and not isinstance(exc, BackendUnavailable)
            ),
            server=lambda: f"Redis at {self._conn.describe()}",
            what=f"waiting for the result of task {task_id!r}",
        )

    async def _wait_for(self, task_id: str, timeout: float | None) -> None:
        future = self._waiters.add(task_id)
        try:
            async with asyncio.timeout(timeout):
                arrived = self._waiters.arrived_since_miss(task_id)
                if arrived:
                    return
                if arrived is None:
                    await self._waiters.live()
                    if await self._batched.get(self._key(task_id)) is not None:
                        return
                await future
        except TimeoutError:
            return
        finally:
            self._waiters.remove(task_id, future)

    async def _get_latest(self, schedule_id: str) -> TaskResult | None:
        task_id = await self.redis.get(f"{self._base}:latest:{schedule_id}")
        return None if task_id is None else await self.get(as_bytes(task_id).decode())

    async def _delete(self, task_id: str) -> bool:
        self._waiters.forget(task_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._key(task_id))
            pipe.zrem(f"{self._base}:expiry", task_id)
            deleted, _ = await pipe.execute()
        return bool(deleted)

    async def _cleanup(self, now: datetime) -> int:
        """Results expire natively in Redis; this counts (and removes any left of) the results
        whose expiry has passed since the last cleanup. Expiries older than an hour are
        forgotten by later writes, so a cleanup after a long pause counts only the last hour."""
        total = 0
        while True:
            count = int(
                await self._scripts["cleanup"](keys=[self._base], args=[to_us(now), _CHUNK])
            )
            total += count
            if count < _CHUNK:
                return total


class RedisResultStorage(SyncWrapper, async_class=AsyncRedisResultStorage):
    """Blocking API of :class:`AsyncRedisResultStorage`."""


__all__ = ["AsyncRedisResultStorage", "RedisResultStorage"]
