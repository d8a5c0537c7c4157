"""Lua scripts: run as Redis functions (FCALL) where the server has them, else by SHA with an
EVAL fallback; on one kept connection when it is free (:class:`Lane`); and (``wait_replicas``)
acknowledged only once enough replicas have their write."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, TypeAlias

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.exceptions import NoScriptError, RedisError, ResponseError

from omniq.exceptions import BackendUnavailable
from omniq.storage.redis._cluster import FollowedCluster
from omniq.storage.redis._sentinel import SentinelFollower, SwitchWatcher

log = logging.getLogger("omniq.storage.redis")

#: A single server's client (also for a Sentinel-managed master) or a Cluster's.
Client: TypeAlias = aioredis.Redis | RedisCluster
#: Seconds one WAIT may take before the write is run again (see :class:`Script`).
_WAIT_ATTEMPT = 1.0


#: The helper files that read the call's keys and arguments, and the function that does it: the
#: loader calls it before the script's own text (see tasks_lib.lua).
_BEGIN = {"tasks_lib": "tasks_begin()"}


@functools.cache
def _parts(names: tuple[str, ...]) -> tuple[list[str], list[str], str]:
    """The helper files' texts, the calls that start a run, and the script's own text."""
    folder = resources.files("omniq.storage.redis").joinpath("lua")
    texts = [folder.joinpath(f"{name}.lua").read_text("utf-8") for name in names]
    begin = [_BEGIN[name] for name in names[:-1] if name in _BEGIN]
    return texts[:-1], begin, texts[-1]


@functools.cache
def lua(*names: str) -> str:
    """The text of a script for EVAL: shared helper files first, then the script itself."""
    helpers, begin, body = _parts(names)
    return "\n".join([*helpers, *begin, body])


def library(name: str, names: tuple[str, ...]) -> str:
    """The same script as a Redis function library of one function, ``name``. The helpers are
    defined once, when the library is loaded, instead of on every call as in an EVAL script
    (about 9 of the 37 µs an enqueue cost the server); ``KEYS`` and ``ARGV`` are set per call
    for the unchanged script text."""
    helpers, begin, body = _parts(names)
    call = " ".join(["KEYS, ARGV = keys, args;", *begin, "return main()"])
    return "\n".join(
        [
            f"#!lua name={name}",
            "local KEYS, ARGV",
            *helpers,
            "local function main()",
            body,
            "end",
            f"redis.register_function('{name}', function(keys, args) {call} end)",
        ]
    )


def pack(args: tuple[Any, ...], encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """A command in the Redis protocol, as redis-py's ``pack_command`` encodes its arguments
    (bytes as they are, text in the connection's encoding, numbers in decimal) at a fraction of
    its cost: a script call has a dozen arguments, and packing them was a fifth of the Python
    time of an enqueue. Anything else is refused naming it (redis-py refuses it too)."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode(encoding, errors)
        elif isinstance(arg, int) and not isinstance(arg, bool):
            data = b"%d" % arg
        elif isinstance(arg, float):
            data = repr(arg).encode()
        else:
            raise TypeError(
                f"a Redis command argument must be bytes, str, int or float, got {arg!r}"
            )
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _function_missing(exc: BaseException) -> bool:
    return isinstance(exc, ResponseError) and "function not found" in str(exc).lower()


def _no_functions(exc: BaseException) -> bool:
    """The server (before Redis 7, or with FCALL renamed or denied) runs no functions."""
    text = str(exc).lower()
    return isinstance(exc, ResponseError) and (
        "unknown command" in text or "noperm" in text or "no permissions" in text
    )


def is_missing(exc: BaseException) -> bool:
    """The server does not know the script or function (its cache or libraries were flushed)."""
    return isinstance(exc, NoScriptError) or _function_missing(exc)


class Lane:
    """One connection of a client's pool kept for script calls made one after another.

    A script call through redis-py's client takes a connection from the blocking pool and gives
    it back, under its condition lock and timeout, and packs a dozen arguments: measured, 64 µs
    of CPU per call against 23 µs on a connection kept (a sequential enqueue is mostly this).
    So the first script call takes a connection and keeps it; whoever finds it busy (calls
    running concurrently) goes through the pool as before. An error that leaves it unusable
    drops it, and the call is made again through the pool, with redis-py's retries, as redis-py
    itself would have retried it. Only for a single server (a Cluster routes each key to its
    node), and only with ``max_connections`` of 2 or more, so the pool is never left empty.
    Not for a Sentinel master: its pool holds commands at ``get_connection`` while a failover
    is under way (storage/redis/_sentinel.py), which a kept connection never calls again, so
    enqueues went on to the master being demoted and were lost with it (reliability g,
    sentinel-failover without wait_replicas: 33-38 acknowledged enqueues missing in 3 of 3
    runs with the lane, 0 in 2 of 2 without).
    """

    def __init__(self, client: aioredis.Redis) -> None:
        self._pool = client.connection_pool
        self._conn: Any = None
        self.busy = False
        self.closed = False
        kwargs = self._pool.connection_kwargs
        self._encoding = (
            kwargs.get("encoding") or "utf-8",
            kwargs.get("encoding_errors") or "strict",
        )

    @classmethod
    def of(cls, client: Client) -> Lane | None:
        """A lane for ``client``, or None where it does not apply."""
        if not isinstance(client, aioredis.Redis):
            return None
        if isinstance(client.connection_pool, SentinelConnectionPool):
            return None  # its failover gate is at get_connection (see the class docstring)
        limit = getattr(client.connection_pool, "max_connections", None)
        if limit is None or limit < 2:
            return None
        return cls(client)

    async def call(self, *command: Any) -> Any:
        """``command``'s reply on the kept connection (the caller checked it is not busy).

        Raises ``LaneLost`` (nothing known about the command: send it through the pool) when
        the connection failed; the server's error replies are raised as they are."""
        if self.busy:  # never two commands in flight on it: the caller goes through the pool
            raise LaneLost
        packed = pack(command, *self._encoding)
        self.busy = True
        try:
            conn = self._conn
            if conn is None:
                conn = self._conn = await self._pool.get_connection()  # type: ignore[no-untyped-call]
            writer = getattr(conn, "_writer", None)
            if writer is None or not conn.is_connected:
                await conn.send_packed_command(packed, check_health=False)
            else:
                # send_packed_command bounds the write with asyncio.wait_for, a task and a loop
                # turn per command; the write goes to the socket at once unless it is backed up
                writer.write(packed)
                if writer.transport.get_write_buffer_size():
                    await asyncio.wait_for(writer.drain(), conn.socket_timeout)
            return await conn.read_response()
        except ResponseError:
            raise
        except (RedisError, OSError, TimeoutError) as exc:
            # redis-py disconnected it already; give it back and take a fresh one next time
            await self._drop()
            raise LaneLost from exc
        except BaseException:
            await self._drop()
            raise
        finally:
            self.busy = False

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.disconnect(nowait=True)
            await self._pool.release(conn)

    async def aclose(self) -> None:
        """Gives the connection back to its pool (before the client closes the pool)."""
        self.closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._pool.release(conn)


class LaneLost(Exception):
    """The lane's connection failed: the command is sent again through the pool."""


#: Connection options a blocking twin of an asyncio connection takes as they are.
_SYNC_OPTIONS = frozenset(
    {
        "host",
        "port",
        "db",
        "username",
        "password",
        "socket_timeout",
        "socket_connect_timeout",
        "socket_keepalive",
        "socket_keepalive_options",
        "client_name",
        "encoding",
        "encoding_errors",
        "retry_on_timeout",
    }
)
#: Options it does without: the checks of a pooled connection, redis-py's asyncio retry object
#: (a failed call goes the asyncio way, which retries), replies left undecoded as everywhere here.
_SYNC_SKIPPED = frozenset({"health_check_interval", "retry", "decode_responses"})


class SyncLane:
    """A blocking connection for the sync API's one-by-one enqueue, used in the caller's own
    thread: the asyncio way hands each call to OmniQ's loop thread and back, two thread
    switches that cost a sync enqueue more than the rest of its Python time.

    One caller at a time (a lock taken without waiting: a caller that finds it taken goes the
    asyncio way); remade after a fork. Only for a plain TCP connection to a single server (a
    Sentinel master moves, a Cluster routes by key, TLS and Unix sockets keep the asyncio way);
    whatever fails here (the connection, an unknown function, an error reply) is answered by
    None, and the caller makes the same call the asyncio way, which handles it as before.
    """

    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options
        self._lock = threading.Lock()
        self._conn: Any = None
        self._pid = os.getpid()
        self._encoding = (
            options.get("encoding") or "utf-8",
            options.get("encoding_errors") or "strict",
        )

    @classmethod
    def of(cls, client: Client) -> SyncLane | None:
        if not isinstance(client, aioredis.Redis):
            return None
        pool = client.connection_pool
        if type(pool) not in (aioredis.ConnectionPool, aioredis.BlockingConnectionPool):
            return None  # a Sentinel master's pool
        if pool.connection_class is not aioredis.Connection:
            return None
        kwargs = pool.connection_kwargs
        if kwargs.get("decode_responses") or str(kwargs.get("protocol", 2)) != "2":
            return None
        if set(kwargs) - _SYNC_OPTIONS - _SYNC_SKIPPED:
            return None
        return cls({k: v for k, v in kwargs.items() if k in _SYNC_OPTIONS})

    def call(self, *command: Any) -> Any:
        """``command``'s reply, or :data:`NOT_SENT` when it was not made or its outcome is
        unknown (the caller makes it the asyncio way; an enqueue is idempotent by id)."""
        if not self._lock.acquire(blocking=False):
            return NOT_SENT
        try:
            conn = self._conn
            if conn is None or self._pid != os.getpid():
                import redis

                conn = self._conn = redis.Connection(**self._options)  # type: ignore[no-untyped-call]
                self._pid = os.getpid()
            try:
                conn.send_packed_command([pack(command, *self._encoding)], check_health=False)
                return conn.read_response()
            except ResponseError:
                return NOT_SENT
            except (RedisError, OSError):
                conn.disconnect()
                return NOT_SENT
        finally:
            self._lock.release()

    def close(self) -> None:
        if self._lock.acquire(timeout=5):
            try:
                conn, self._conn = self._conn, None
                if conn is not None:
                    conn.disconnect()
            finally:
                self._lock.release()


#: What :meth:`SyncLane.call` answers for a call not made.
NOT_SENT: Any = object()


#: The lane of each client that has one (see :func:`open_lane`).
_LANES: weakref.WeakKeyDictionary[Any, Lane] = weakref.WeakKeyDictionary()


#: The blocking lane of each client that has one (see :func:`sync_lane`).
_SYNC_LANES: weakref.WeakKeyDictionary[Any, SyncLane] = weakref.WeakKeyDictionary()


def open_lane(client: Client) -> None:
    """Gives ``client``'s scripts a :class:`Lane`, and ``client`` a :class:`SyncLane`, where
    they apply; call before registering its scripts."""
    lane = Lane.of(client)
    if lane is not None:
        _LANES[client] = lane
    blocking = SyncLane.of(client)
    if blocking is not None:
        _SYNC_LANES[client] = blocking


def sync_lane(client: Client) -> SyncLane | None:
    return _SYNC_LANES.get(client)


async def close_lane(client: Client) -> None:
    lane = _LANES.pop(client, None)
    if lane is not None:
        await lane.aclose()
    blocking = _SYNC_LANES.pop(client, None)
    if blocking is not None:
        blocking.close()


class Script:
    """A Lua script, run on a single server or Sentinel master as the one function of a Redis
    function library named after its SHA (loaded on first use, and again when the server
    answers that it does not know it, e.g. after FUNCTION FLUSH), elsewhere (a Cluster, Redis
    before 7, FCALL or FUNCTION refused) by EVALSHA, falling back to EVAL (which also caches it
    on that node) when the node answers NOSCRIPT. Functions are replicated and persisted with
    the data, so a promoted replica has them. Sequential calls share a kept connection
    (:class:`Lane`).

    redis-py's own script objects answer NOSCRIPT with a SCRIPT LOAD on the nodes its node
    cache marks as primaries; after a Cluster failover (redis-py 7.4.1) that cache could still
    mark the promoted node a replica while its slot cache routed EVALSHA to it, so every script
    call on the slot failed forever. EVAL goes wherever EVALSHA went (the node of the first
    key), so the fallback cannot miss.

    With ``replicas`` (``wait_replicas``), the call is followed by ``WAIT replicas`` on the same
    connection and returns only once that many replicas have the write (on a Cluster, on a
    connection of the master of the keys' slot, see :meth:`FollowedCluster.together`). A WAIT that falls short
    (a replica promoted meanwhile, so the write went to a master about to be discarded) runs the
    script again, on whatever the master is by then, until ``deadline`` seconds have passed.
    ``merge`` combines the reply of an earlier run with the later one (the script may have
    stored everything the first time and answer "already there" the second).
    """

    def __init__(
        self,
        client: Client,
        source: str,
        *,
        names: tuple[str, ...] | None = None,
        replicas: int = 0,
        deadline: float | None = None,
        merge: Callable[[Any, Any], Any] | None = None,
        where: str = "Redis",
        follower: SentinelFollower | None = None,
    ) -> None:
        self._client = client
        self._where = where
        self._follower = follower
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
        #: the name of the function library (and of its one function) that runs this script
        self.function = f"omniq_{self.sha}"
        self._names = names
        #: whether the server runs it as a function: None until known; never on a Cluster
        #: (FCALL and FUNCTION LOAD would need routing of their own there)
        self.functions: bool | None = (
            None if names is not None and isinstance(client, aioredis.Redis) else False
        )
        self._lane = _LANES.get(client)
        self.replicas = replicas
        self._deadline = 30.0 if deadline is None else deadline
        self._merge = merge

    async def __call__(self, *, keys: list[Any], args: list[Any]) -> Any:
        if not self.replicas:
            return await self._run(keys, args)
        return await self._run_and_wait(keys, args)

    def head(self) -> tuple[str, str]:
        """How to call it in a pipeline: FCALL once the function is known to be loaded, else
        EVALSHA (a missing function or script is then the caller's to handle, see
        :func:`is_missing`)."""
        return ("FCALL", self.function) if self.functions else ("EVALSHA", self.sha)

    async def _run(self, keys: list[Any], args: list[Any]) -> Any:
        lane = self._lane
        if lane is not None and not lane.busy and not lane.closed:
            with contextlib.suppress(LaneLost):
                return await self._send(lane.call, keys, args)
        client: Any = self._client
        return await self._send(client.execute_command, keys, args)

    async def _send(
        self, send: Callable[..., Awaitable[Any]], keys: list[Any], args: list[Any]
    ) -> Any:
        if self.functions is not False:
            try:
                reply = await send("FCALL", self.function, len(keys), *keys, *args)
            except ResponseError as exc:
                if _no_functions(exc):
                    self._unavailable(exc)
                elif not _function_missing(exc):
                    raise
                elif await self._load(send):
                    return await send("FCALL", self.function, len(keys), *keys, *args)
            else:
                self.functions = True  # loaded before (by another client, or a run before)
                return reply
        try:
            return await send("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await send("EVAL", self.source, len(keys), *keys, *args)

    def _unavailable(self, exc: BaseException) -> None:
        """Notes a server that runs no functions (it then gets EVALSHA for good)."""
        if _no_functions(exc):
            log.debug("%s runs no Redis functions (%s): scripts run by EVALSHA", self._where, exc)
            self.functions = False

    async def _load(self, send: Callable[..., Awaitable[Any]]) -> bool:
        """Loads the function library (again, after a FUNCTION FLUSH); False where the server
        refuses it, which is then noted so that EVALSHA is used from now on."""
        assert self._names is not None
        try:
            await send("FUNCTION", "LOAD", library(self.function, self._names))
        except ResponseError as exc:
            if "already exists" not in str(exc).lower():
                if not _no_functions(exc):
                    log.warning(
                        "%s refused the function library %s (%s): scripts run by EVALSHA",
                        self._where,
                        self.function,
                        exc,
                    )
                self.functions = False
                return False
        self.functions = True
        return True

    async def _together(
        self, keys: list[Any], args: list[Any], script: tuple[str, str]
    ) -> tuple[Any, Any]:
        """The script and ``WAIT`` sent together on one connection (the WAIT counts the
        replicas that have this very write), and their replies, errors in place."""
        run = (*script, len(keys), *keys, *args)
        wait = ("WAIT", self.replicas, int(_WAIT_ATTEMPT * 1000))
        client = self._client
        if isinstance(client, FollowedCluster):
            # on the master of the keys' slot: every key of a script shares that slot
            reply, acked = await client.together(keys[0], run, wait)
            return reply, acked
        async with client.pipeline(transaction=False) as pipe:
            pipe.execute_command(*run)
            pipe.execute_command(*wait)
            reply, acked = await pipe.execute(raise_on_error=False)
        return reply, acked

    async def _run_once_and_wait(self, keys: list[Any], args: list[Any]) -> tuple[Any, Any]:
        """One run of the script followed by its WAIT, loading what the server lacks."""
        if self.functions is None:
            client: Any = self._client
            await self._load(client.execute_command)
        reply, acked = await self._together(keys, args, self.head())
        if self.functions and isinstance(reply, ResponseError):
            self._unavailable(reply)
            if _function_missing(reply) or not self.functions:
                client = self._client
                if self.functions is not False:
                    await self._load(client.execute_command)
                reply, acked = await self._together(keys, args, self.head())
        if isinstance(reply, NoScriptError):
            reply, acked = await self._together(keys, args, ("EVAL", self.source))
        return reply, acked

    async def _run_and_wait(self, keys: list[Any], args: list[Any]) -> Any:
        deadline = time.monotonic() + self._deadline
        earlier: Any = None
        ran = False
        conn = self._follower
        while True:
            switches = conn.switches if conn is not None else 0
            reply, acked = await self._run_once_and_wait(keys, args)
            if isinstance(acked, Exception):
                raise acked
            if isinstance(reply, Exception):
                raise reply
            if ran and self._merge is not None:
                reply = self._merge(earlier, reply)
            earlier, ran = reply, True
            if conn is not None:
                await asyncio.sleep(0)  # let the sentinel watcher read what has arrived
            if conn is not None and (conn.switches != switches or not conn.gate.is_set()):
                # a failover began while this write was under way: the replica that acknowledged
                # it may not be the one promoted, so it is written again on the new master
                log.warning("Redis: a write raced a failover; running it again on the new master")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(SwitchWatcher.HOLD):
                        await conn.gate.wait()
                continue
            if int(acked) >= self.replicas:
                return reply
            if time.monotonic() > deadline:
                raise BackendUnavailable(
                    f"{self._where}: only {int(acked)} of wait_replicas={self.replicas} replicas "
                    f"acknowledged a write within {self._deadline:g}s"
                )
            log.warning(
                "Redis: %d of %d replicas acknowledged a write; running it again",
                int(acked),
                self.replicas,
            )


def register(
    client: Client,
    *names: str,
    replicas: int = 0,
    deadline: float | None = None,
    merge: Callable[[Any, Any], Any] | None = None,
    where: str = "Redis",
    follower: SentinelFollower | None = None,
) -> Script:
    """The :class:`Script` of the concatenated ``lua/<name>.lua`` files."""
    return Script(
        client,
        lua(*names),
        names=names,
        replicas=replicas,
        deadline=deadline,
        merge=merge,
        where=where,
        follower=follower,
    )


def flags_merge(first: list[Any], again: list[Any]) -> list[Any]:
    """Per item, the first run's answer unless it said 0 ("not done"): a script run again after
    a short WAIT finds what the first run stored and answers 0 for it."""
    return [a if a else b for a, b in zip(first, again, strict=True)]


__all__ = [
    "NOT_SENT",
    "Client",
    "Lane",
    "Script",
    "SyncLane",
    "close_lane",
    "flags_merge",
    "is_missing",
    "library",
    "lua",
    "open_lane",
    "pack",
    "register",
    "sync_lane",
]
