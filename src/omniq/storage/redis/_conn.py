"""What the three Redis components share: connection settings, pools, scripts and key prefixes.

Every key of one project carries the project name as its Cluster hash tag, ``<prefix>:{<project>}``
(``omniq:tasks:{default}:task:<id>``, ``omniq:results:{default}:result:<id>``): all keys of a
project hash to one slot, so every Lua script touches a single slot and a completion can write
results and acknowledgements in one script even on Redis Cluster. The price is that one project
lives on one shard; separate projects spread over the cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import inspect
import logging
import math
import socket
import time
import weakref
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, TypeAlias, TypeVar
from urllib.parse import SplitResult, parse_qs, parse_qsl, unquote, urlencode, urlsplit

from omniq._redact import redact_text, redact_url
from omniq.exceptions import BackendUnavailable, ConfigError

try:
    import redis.asyncio as aioredis
    from redis.asyncio.cluster import ClusterNode, RedisCluster
    from redis.asyncio.connection import SSLConnection
    from redis.asyncio.retry import Retry
    from redis.asyncio.sentinel import (
        Sentinel,
        SentinelConnectionPool,
        SentinelManagedConnection,
    )
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import (
        NoScriptError,
        RedisClusterException,
        RedisError,
    )
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installed extras
    raise ModuleNotFoundError(
        "the Redis backend needs the 'redis' package: pip install 'omniq-tasks[redis]'",
        name=exc.name,
    ) from exc

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
T = TypeVar("T")
log = logging.getLogger("omniq.storage.redis")

#: Errors that say the server is unreachable, hung or (briefly, during a failover) refusing:
#: worth another try on the same or the new master.
TRANSIENT = (RedisConnectionError, RedisTimeoutError, RedisClusterException, OSError)
#: A blocking wait (BLPOP) the server has not answered this long after its own timeout
#: means a hung server (stopped, or a network that drops packets): the wait is abandoned.
BLOCKING_GRACE = 5.0
#: TCP keepalive on every connection: a peer that vanished without a word (host down, cable
#: cut) is noticed by the kernel within seconds instead of the system's two hours.
_KEEPALIVE = {
    getattr(socket, name): value
    for name, value in (("TCP_KEEPIDLE", 5), ("TCP_KEEPINTVL", 2), ("TCP_KEEPCNT", 3))
    if hasattr(socket, name)
}
#: A pooled connection idle this long sends a PING before its next command, so one that died
#: while idle is replaced before a command is lost on it.
_HEALTH_CHECK_INTERVAL = 10
#: Seconds a Cluster startup node has to answer a PING before the others are asked first.
_PROBE = 2.0
#: Seconds one WAIT may take before the write is run again (see :class:`Script`).
_WAIT_ATTEMPT = 1.0

#: A single server's client (also for a Sentinel-managed master) or a Cluster's.
Client: TypeAlias = aioredis.Redis | RedisCluster


def to_us(value: datetime) -> int:
    """Microseconds since the epoch, exactly (a float timestamp would round)."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(value: bytes | str | int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(value))


def opt_us(value: datetime | None) -> str:
    """A time argument for the scripts: microseconds, or '' for None."""
    return "" if value is None else str(to_us(value))


def as_bytes(value: bytes | str) -> bytes:
    """A reply value as bytes (the clients here never decode replies; this satisfies typing)."""
    return value if isinstance(value, bytes) else value.encode()


def pxat_ms(value: datetime) -> int:
    """A PEXPIREAT time: rounded up, so a key never disappears before its expiry."""
    return math.ceil(to_us(value) / 1000)


@functools.cache
def lua(*names: str) -> str:
    """The text of a script: shared helper files first, then the script itself."""
    folder = resources.files("omniq.storage.redis").joinpath("lua")
    return "\n".join(folder.joinpath(f"{name}.lua").read_text("utf-8") for name in names)


def key_base(prefix: str, project: str, *, option: str) -> str:
    """``omniq:tasks`` + project ``default`` -> ``omniq:tasks:{default}`` (hash-tagged)."""
    if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
        raise ConfigError(
            f"{option} must be a non-empty string without '{{' or '}}' (the project name is "
            f"the Cluster hash tag), got {prefix!r}"
        )
    return f"{prefix}:{{{project}}}"


#: URL schemes of each topology (``redis+sentinel://`` as Prefect, RedisVL and
#: Redis-Sentinel-Url spell it; ``redis+cluster://`` by analogy), and whether they use TLS.
_PLAIN_SCHEMES = {"redis": False, "rediss": True, "unix": False}
_SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}
_CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}
_SENTINEL_PORT = 26379


def parse_address(value: Any, default_port: int, *, option: str) -> tuple[str, int]:
    """``"host:port"``, ``"host"``, ``"[::1]:26379"`` or a ``(host, port)`` pair."""
    if isinstance(value, tuple | list) and len(value) == 2:
        host, port = value
    elif isinstance(value, str) and value:
        if value.startswith("["):
            host, _, rest = value[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else default_port
        elif value.count(":") == 1:
            host, port = value.split(":")
        else:
            host, port = value, default_port
    else:
        raise ConfigError(f"{option} entries are 'host:port' strings, got {value!r}")
    try:
        number = int(port)
    except (TypeError, ValueError):
        number = -1
    if not isinstance(host, str) or not host or not 0 < number < 65536:
        raise ConfigError(f"{option}: {value!r} is not a valid 'host:port' address")
    return host, number


def _addresses(value: Any, default_port: int, *, option: str) -> list[tuple[str, int]]:
    if isinstance(value, str) or not isinstance(value, list | tuple) or not value:
        raise ConfigError(f"{option} must be a non-empty list of 'host:port', got {value!r}")
    return [parse_address(v, default_port, option=option) for v in value]


def _url_nodes(url: str, default_port: int) -> tuple[list[tuple[str, int]], SplitResult]:
    """The comma-separated ``host:port`` list of a Sentinel or Cluster URL, and its parts."""
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    if not hosts:
        raise ConfigError(f"Redis URL {redact_url(url)!r} names no host")
    return [parse_address(h, default_port, option="url") for h in hosts.split(",")], parts


class _SentinelConnection(SentinelManagedConnection):
    """redis-py's Sentinel-managed connection asks the pool (so the sentinels) where the
    master is in ``connect()``; but a command that finds its connection closed reconnects
    through ``connect_check_health()`` (redis-py 7.4.1 ``send_packed_command``), which
    reuses the last address. After a failover dropped the connections, every retried command
    went back to the old master (and, if it hung, waited its socket timeout there). This one
    always reconnects through the pool."""

    _omniq_connecting = False

    async def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if self._omniq_connecting or self.is_connected:
            await super().connect_check_health(
                check_health=check_health, retry_socket_connect=retry_socket_connect
            )
            return
        self._omniq_connecting = True
        try:
            # the pool's master address, then connect_to(), which comes back here to connect
            await self.connect()  # type: ignore[no-untyped-call]
        finally:
            self._omniq_connecting = False


class _SentinelSSLConnection(_SentinelConnection, SSLConnection):
    pass


def _take_wait_replicas(url: str, default: int) -> tuple[str, int]:
    """``...?wait_replicas=N`` read from any Redis URL and removed from it (redis-py, which
    parses the plain ``redis://`` URLs, would refuse an option it does not know)."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    values = [v for k, v in pairs if k == "wait_replicas"]
    if not values:
        return url, default
    if not values[-1].isdigit():
        raise ConfigError(
            f"Redis URL {redact_url(url)!r}: wait_replicas must be a number, got {values[-1]!r}"
        )
    rest = urlencode([(k, v) for k, v in pairs if k != "wait_replicas"])
    return parts._replace(query=rest).geturl(), int(values[-1])


class _GatedSentinelPool(SentinelConnectionPool):
    """redis-py's Sentinel pool (it asks the sentinels where the master is at each connect)
    whose commands wait while a failover is under way (see :class:`SwitchWatcher`)."""

    _omniq_gate: asyncio.Event | None = None
    #: old master address -> the new one, from the switches the watcher heard
    _omniq_moved: dict[tuple[str, int], tuple[str, int]] | None = None

    async def get_master_address(self) -> Any:
        """The master as the sentinels see it, unless one that has not heard of the latest
        switch yet names the old master: right after a failover only the leading sentinel
        knows, and redis-py takes the first sentinel's answer, so it reconnected to the old
        master and wrote there until its demotion (redis-py 7.4.1 ``discover_master``)."""
        address = await self.sentinel_manager.discover_master(self.service_name)
        if self._omniq_moved:
            address = self._omniq_moved.get(tuple(address), address)
        if self.master_address != address:
            self.master_address = address
            await self.disconnect(inuse_connections=False)
        return address

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        gate = self._omniq_gate
        if gate is not None and not gate.is_set():
            await gate.wait()
        return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]


class _BlockingSentinelPool(_GatedSentinelPool, aioredis.BlockingConnectionPool):
    """The gated Sentinel pool with the waiting of redis-py's blocking pool: callers beyond
    ``max_connections`` wait."""


class _BoundedCluster(RedisCluster):
    """redis-py's cluster client fails a command when all ``max_connections`` of a node are
    busy; this one makes the command wait for a free place instead, as the pool of a single
    server does (and, as it does, for at most ``socket_timeout`` seconds), so thousands of
    concurrent callers share a few connections."""

    def __init__(self, *args: Any, slots: int, **kwargs: Any) -> None:
        kwargs["max_connections"] = slots
        super().__init__(*args, **kwargs)
        self._omniq_slots = asyncio.Semaphore(slots)
        self._omniq_wait: float | None = kwargs.get("socket_timeout")

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            async with asyncio.timeout(self._omniq_wait):
                await self._omniq_slots.acquire()
        except TimeoutError:
            raise RedisConnectionError(
                f"no connection free within {self._omniq_wait}s ({args[0]!r} not sent)"
            ) from None
        try:
            return await super().execute_command(*args, **kwargs)
        finally:
            self._omniq_slots.release()


class RedisConnection:
    """Connection settings and the clients built from them (seeds/001 options, or a URL), for a
    single server, a Sentinel-managed master or a Cluster; redis-py does the topology work
    (``redis.asyncio.sentinel.Sentinel``, ``redis.asyncio.cluster.RedisCluster``).

    The main client blocks callers when all ``max_connections`` are busy instead of failing, so
    thousands of concurrent callers share a few connections (on a Cluster: per node). Blocking
    waits (BLPOP, pub/sub) use clients of their own outside it: a waiting claimer never
    starves the pool.
    """

    def __init__(
        self,
        *,
        url: str | None = None,
        host: str = "localhost",
        port: int = 6379,
        database: int = 0,
        password: str | None = None,
        username: str | None = None,
        max_connections: int = 10,
        socket_timeout: float | None = 30.0,
        socket_connect_timeout: float | None = 30.0,
        retry_on_timeout: bool = True,
        ssl: bool = False,
        sentinels: list[str] | None = None,
        sentinel_master: str = "mymaster",
        sentinel_password: str | None = None,
        cluster: bool = False,
        cluster_nodes: list[str] | None = None,
        wait_replicas: int = 0,
    ) -> None:
        if url is not None and "wait_replicas=" in url:
            url, wait_replicas = _take_wait_replicas(url, wait_replicas)
        if (
            isinstance(wait_replicas, bool)
            or not isinstance(wait_replicas, int)
            or wait_replicas < 0
        ):
            raise ConfigError(f"wait_replicas must be an int >= 0, got {wait_replicas!r}")
        if isinstance(max_connections, bool) or not isinstance(max_connections, int):
            raise ConfigError(f"max_connections must be an int, got {max_connections!r}")
        if max_connections < 2:
            raise ConfigError(f"max_connections must be >= 2, got {max_connections!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigError(f"port must be an int in 1..65535, got {port!r}")
        if isinstance(database, bool) or not isinstance(database, int) or database < 0:
            raise ConfigError(f"database must be an int >= 0, got {database!r}")
        for name, value in (
            ("socket_timeout", socket_timeout),
            ("socket_connect_timeout", socket_connect_timeout),
        ):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
            ):
                raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
        if not isinstance(sentinel_master, str) or not sentinel_master:
            raise ConfigError(
                f"sentinel_master must be a non-empty string, got {sentinel_master!r}"
            )
        self.url = url
        self.max_connections = max_connections
        self.socket_timeout = socket_timeout
        self.wait_replicas = wait_replicas
        self._options: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_connect_timeout,
            "retry_on_timeout": retry_on_timeout,
            "socket_keepalive": True,
            "socket_keepalive_options": _KEEPALIVE,
            "health_check_interval": _HEALTH_CHECK_INTERVAL,
        }
        #: "single", "sentinel" or "cluster"
        self.mode = "single"
        self._nodes: list[tuple[str, int]] = []
        self.sentinel_master = sentinel_master
        self._sentinel_kwargs: dict[str, Any] = {}
        self._sentinel: Sentinel | None = None
        #: every pool of a Sentinel-managed master, dropped at once when the master moves
        self._pools: weakref.WeakSet[aioredis.ConnectionPool] = weakref.WeakSet()
        self._watcher: SwitchWatcher | None = None
        #: cleared while Sentinel fails the master over: no command starts meanwhile
        self.gate = asyncio.Event()
        self.gate.set()
        #: master switches heard so far (a write that spanned one is run again, see Script)
        self.switches = 0
        #: old master address -> new one, as announced by the last switches (see the pool)
        self.moved: dict[tuple[str, int], tuple[str, int]] = {}
        scheme = url.partition("://")[0].lower() if url is not None else None
        known = {*_PLAIN_SCHEMES, *_SENTINEL_SCHEMES, *_CLUSTER_SCHEMES}
        if url is not None and (scheme not in known or "://" not in url):
            raise ConfigError(
                f"Redis URL scheme {scheme!r} is not supported: use one of "
                f"{', '.join(f'{s}://' for s in sorted(known))}"
            )
        if scheme in _SENTINEL_SCHEMES or sentinels is not None:
            self.mode = "sentinel"
        if scheme in _CLUSTER_SCHEMES or cluster or cluster_nodes is not None:
            if self.mode == "sentinel":
                raise ConfigError("a Redis connection is either Sentinel or Cluster, not both")
            self.mode = "cluster"
            if wait_replicas:
                raise ConfigError(
                    f"wait_replicas={wait_replicas!r} is not supported on Redis Cluster (WAIT "
                    "must follow the write on its node's connection, which redis-py's cluster "
                    "client does not expose); use it with a single server or Sentinel"
                )

        if self.mode == "single":
            if url is None:
                self._options.update(host=host, port=port, db=database, password=password)
                if username is not None:
                    self._options["username"] = username
                if ssl:
                    self._options["connection_class"] = aioredis.SSLConnection
            return  # else redis-py parses the URL itself (redis://, rediss://, unix://)
        if scheme in _PLAIN_SCHEMES:
            # cluster=True with a plain URL: redis-py's RedisCluster.from_url reads it
            if cluster_nodes is not None:
                raise ConfigError(
                    "give the cluster's startup nodes as url or cluster_nodes, not both"
                )
            return

        # Sentinel and Cluster URLs are parsed here; explicit options fill what they omit
        if url is not None:
            default_port = _SENTINEL_PORT if self.mode == "sentinel" else 6379
            nodes, parts = _url_nodes(url, default_port)
            ssl = ssl or {**_SENTINEL_SCHEMES, **_CLUSTER_SCHEMES}[scheme or ""]
            if parts.password is not None:
                password = unquote(parts.password)
            if parts.username:
                username = unquote(parts.username)
            path = [unquote(p) for p in parts.path.split("/") if p]
            query = parse_qs(parts.query)
            unknown = sorted(set(query) - {"sentinel_password"})
            if unknown:
                raise ConfigError(
                    f"Redis URL {redact_url(url)!r}: unknown option(s) {unknown} "
                    "(only sentinel_password and wait_replicas are read from the query)"
                )
            if "sentinel_password" in query:
                sentinel_password = query["sentinel_password"][-1]
            if self.mode == "sentinel":
                if len(path) > 2:
                    raise ConfigError(
                        f"Redis URL {redact_url(url)!r}: expected /<master name>[/<database>]"
                    )
                if path:
                    self.sentinel_master = path[0]
                if len(path) == 2:
                    database = self._url_database(path[1], url)
                sentinels = [f"{h}:{p}" for h, p in nodes]
            else:
                if len(path) > 1:
                    raise ConfigError(f"Redis URL {redact_url(url)!r}: a cluster URL has no path")
                database = self._url_database(path[0], url) if path else 0
                cluster_nodes = [f"{h}:{p}" for h, p in nodes]
        self._options.update(password=password)
        if username is not None:
            self._options["username"] = username
        if self.mode == "sentinel":
            self._nodes = _addresses(sentinels, _SENTINEL_PORT, option="sentinels")
            self._options["db"] = database
            if ssl:
                self._options["ssl"] = True  # SentinelConnectionPool picks its SSL connection
            self._sentinel_kwargs = {
                "socket_timeout": socket_timeout,
                "socket_connect_timeout": socket_connect_timeout,
                "socket_keepalive": True,
                "socket_keepalive_options": _KEEPALIVE,
                "password": sentinel_password,
                # one try per sentinel: asking the next sentinel is the retry. redis-py's
                # default (3 retries with up to 10 s of backoff, per sentinel, inside each of
                # the master connection's own retries) made a wrong sentinel password take
                # 48-90 s to be reported
                "retry": Retry(NoBackoff(), 0),
            }
        else:
            self._nodes = _addresses(
                cluster_nodes if cluster_nodes is not None else [f"{host}:{port}"],
                6379,
                option="cluster_nodes",
            )
            self._check_cluster_database(database)
            if ssl:
                self._options["ssl"] = True

    @staticmethod
    def _url_database(text: str, url: str) -> int:
        if not text.isdigit():
            raise ConfigError(f"Redis URL {redact_url(url)!r}: database {text!r} is not a number")
        return int(text)

    @staticmethod
    def _check_cluster_database(database: int | None) -> None:
        if database:
            raise ConfigError(f"Redis Cluster has only database 0, got database={database!r}")

    # -- clients ----------------------------------------------------------------------------
    def _pool(self, cls: type[aioredis.ConnectionPool], **options: Any) -> aioredis.ConnectionPool:
        merged = {**self._options, **options}
        if self.url is not None:
            return cls.from_url(self.url, **merged)
        return cls(**merged)

    def _sentinel_manager(self) -> Sentinel:
        """One :class:`Sentinel` per connection: every client of it asks the same sentinels."""
        if self._sentinel is None:
            self._sentinel = Sentinel(  # type: ignore[no-untyped-call]
                self._nodes, sentinel_kwargs=self._sentinel_kwargs
            )
        return self._sentinel

    def _sentinel_master(self, **options: Any) -> aioredis.Redis:
        """A client of the Sentinel-managed master whose pool follows a switch at once."""
        options.setdefault("connection_pool_class", _GatedSentinelPool)
        options.setdefault(
            "connection_class",
            _SentinelSSLConnection if options.get("ssl") else _SentinelConnection,
        )
        master: aioredis.Redis = self._sentinel_manager().master_for(
            self.sentinel_master, redis_class=aioredis.Redis, **options
        )
        pool = master.connection_pool
        assert isinstance(pool, _GatedSentinelPool)
        pool._omniq_gate = self.gate
        pool._omniq_moved = self.moved
        self._pools.add(pool)
        if self._watcher is None:
            self._watcher = SwitchWatcher(self)
        self._watcher.start()
        return master

    async def drop_pools(self) -> None:
        """Disconnects every connection to the Sentinel-managed master, busy ones included: the
        commands on them fail now and are retried, and each reconnect asks the sentinels where
        the master is. Without this, pooled connections kept writing to the old master until
        Sentinel demoted it (~10 s), and everything written there was discarded."""
        connections = [
            connection
            for pool in list(self._pools)
            for connection in (*pool._available_connections, *pool._in_use_connections)
        ]
        for connection in connections:
            # abort, not close: a close waits to flush what the old master no longer reads (a
            # hung one), and redis-py's pool.disconnect() then waited socket_connect_timeout
            # per connection while the commands on them waited on
            writer = getattr(connection, "_writer", None)
            if writer is not None:
                writer.transport.abort()
        await asyncio.gather(
            *(connection.disconnect(nowait=True) for connection in connections),
            return_exceptions=True,
        )

    async def order_cluster_nodes(self) -> None:
        """Puts the startup nodes that answer a PING within :data:`_PROBE` seconds first.
        redis-py asks them for the slot map one after the other, each with the full socket
        timeout: with the first node hung (alive for TCP, answering nothing), every worker and
        client took a minute to start."""
        if len(self._nodes) < 2:
            return

        async def answers(host: str, port: int) -> bool:
            probe = aioredis.Redis(
                host=host,
                port=port,
                username=self._options.get("username"),
                password=self._options.get("password"),
                ssl=bool(self._options.get("ssl")),
                socket_timeout=_PROBE,
                socket_connect_timeout=_PROBE,
                retry=Retry(NoBackoff(), 0),
            )
            try:
                await done(probe.ping())
            except (RedisError, OSError):
                return False
            finally:
                await probe.aclose()
            return True

        good = await asyncio.gather(*(answers(h, p) for h, p in self._nodes))
        ranked = sorted(
            zip(good, range(len(good)), self._nodes, strict=True), key=lambda g: not g[0]
        )
        self._nodes = [node for _, _, node in ranked]

    async def check_sentinels(self) -> None:
        """Asks each sentinel for the master, once, and raises :class:`BackendUnavailable` with
        one short reason per sentinel when none knows it (a wrong sentinel password is
        reported in well under a second, without redis-py's retries or its dump of
        connection objects)."""
        reasons = []
        for sentinel, (host, port) in zip(
            self._sentinel_manager().sentinels, self._nodes, strict=True
        ):
            try:
                masters = await sentinel.sentinel_masters()  # type: ignore[no-untyped-call]
            except (RedisError, OSError) as exc:
                reasons.append(f"{host}:{port}: {type(exc).__name__}: {redact_text(str(exc))}")
                continue
            state = masters.get(self.sentinel_master)
            if state and state["is_master"] and not (state["is_sdown"] or state["is_odown"]):
                return
            reasons.append(f"{host}:{port}: no healthy master {self.sentinel_master!r}")
        raise BackendUnavailable(f"cannot reach Redis at {self.describe()}: " + "; ".join(reasons))

    def _cluster(self, slots: int | None, **options: Any) -> RedisCluster:
        merged = {**self._options, **options}
        merged.pop("retry_on_timeout", None)  # RedisCluster retries timeouts itself
        if self.url is not None and not self._nodes:
            if slots is None:
                return RedisCluster.from_url(self.url, **merged)
            return _BoundedCluster.from_url(self.url, slots=slots, **merged)
        nodes = [ClusterNode(host, port) for host, port in self._nodes]
        if slots is None:
            return RedisCluster(startup_nodes=nodes, **merged)
        return _BoundedCluster(startup_nodes=nodes, slots=slots, **merged)

    def client(self) -> Client:
        """The pooled client for every command that answers at once."""
        if self.mode == "sentinel":
            return self._sentinel_master(
                connection_pool_class=_BlockingSentinelPool,
                max_connections=self.max_connections,
                timeout=self.socket_timeout,
                **self._options,
            )
        if self.mode == "cluster":
            return self._cluster(self.max_connections)
        pool = self._pool(
            aioredis.BlockingConnectionPool,
            max_connections=self.max_connections,
            timeout=self.socket_timeout,
        )
        return aioredis.Redis.from_pool(pool)

    def blocking_client(self) -> Client:
        """A client for blocking waits: one connection per waiter, no read timeout (the wait
        carries its own, see :func:`blocking`), never counted against ``max_connections``."""
        if self.mode == "sentinel":
            return self._sentinel_master(**{**self._options, "socket_timeout": None})
        if self.mode == "cluster":
            return self._cluster(None, socket_timeout=None, max_connections=2**31)
        pool = self._pool(aioredis.ConnectionPool, socket_timeout=None)
        return aioredis.Redis.from_pool(pool)

    async def subscriber(self, channel: str) -> aioredis.Redis:
        """A client for a pub/sub subscription to ``channel``. On a Cluster, a plain client of
        the node that holds the channel's slot, where the scripts that publish on it run
        (redis-py's async cluster client has no pub/sub; a PUBLISH reaches every node
        anyway). Called again at each resubscription, so a moved slot is followed."""
        if self.mode != "cluster":
            client = self.blocking_client()
            assert isinstance(client, aioredis.Redis)
            return client
        cluster = self._cluster(None)
        try:
            await cluster.initialize()
            node = cluster.get_node_from_key(channel)
        finally:
            await cluster.aclose()
        if node is None:
            raise BackendUnavailable(f"no node of {self.describe()} serves channel {channel!r}")
        pool = aioredis.ConnectionPool(
            connection_class=node.connection_class,
            **{**node.connection_kwargs, "socket_timeout": None},
        )
        return aioredis.Redis.from_pool(pool)

    async def aclose(self) -> None:
        """Closes the connections to the sentinels (the clients close their own)."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            await watcher.stop()
        sentinel, self._sentinel = self._sentinel, None
        if sentinel is not None:
            for client in sentinel.sentinels:
                await client.aclose()

    @functools.cached_property
    def target(self) -> tuple[Any, ...]:
        """Which server and database this connects to, to tell whether two components share one."""
        if self.mode == "sentinel":
            return (
                "sentinel",
                self.sentinel_master,
                tuple(sorted(self._nodes)),
                self._options["db"],
            )
        if self.mode == "cluster":
            if self._nodes:
                return ("cluster", tuple(sorted(self._nodes)))
            kw = self._pool(aioredis.ConnectionPool).connection_kwargs
            return ("cluster", ((kw.get("host"), kw.get("port")),))
        kw = self._pool(aioredis.ConnectionPool).connection_kwargs
        return (kw.get("host"), kw.get("port"), kw.get("path"), int(kw.get("db") or 0))

    def describe(self) -> str:
        """Where this connects, for messages (a password in the URL is masked)."""
        nodes = ",".join(f"{h}:{p}" for h, p in self._nodes)
        if self.mode == "sentinel":
            return (
                f"master {self.sentinel_master!r} via sentinels {nodes} (db {self._options['db']})"
            )
        if self.mode == "cluster" and nodes:
            return f"cluster {nodes}"
        if self.url is not None:
            return redact_url(self.url)
        host, port, _, db = self.target
        return f"{host}:{port}/{db}"


class SwitchWatcher:
    """Follows Sentinel's failover announcements for one master: a subscription on every
    sentinel (any one of them is enough).

    ``+failover-state-send-slaveof-noone`` comes from the leading sentinel just before it
    promotes the replica: from then on no command starts (the connection's gate is closed)
    until ``+switch-master`` names the new master; the pools are then dropped
    (:meth:`RedisConnection.drop_pools`) and the gate opens. Without the gate, writes kept
    going to the old master between the promotion and the announcement, and without the drop
    until Sentinel demoted it (~10 s later); everything written there was discarded. A hung
    master (alive for TCP, answering nothing) is also left within a second of the promotion.
    A failover that never announces a switch (aborted) reopens the gate after ``_HOLD``."""

    _RETRY = 1.0
    _HOLD = 10.0

    def __init__(self, connection: RedisConnection) -> None:
        self._connection = connection
        self._tasks: list[asyncio.Task[None]] = []
        self._last: str | None = None
        self._reopen: asyncio.TimerHandle | None = None

    def start(self) -> None:
        if self._tasks:
            return
        kwargs = {
            k: v for k, v in self._connection._sentinel_kwargs.items() if k != "socket_timeout"
        }
        self._tasks = [
            asyncio.create_task(self._follow(host, port, kwargs), name="omniq-redis-sentinel")
            for host, port in self._connection._nodes
        ]

    async def _follow(self, host: str, port: int, kwargs: dict[str, Any]) -> None:
        name = self._connection.sentinel_master
        while True:
            client = aioredis.Redis(host=host, port=port, **kwargs)
            try:
                pubsub = client.pubsub()
                await pubsub.subscribe(
                    "+switch-master", "+try-failover", "+failover-state-send-slaveof-noone"
                )
                await pubsub.psubscribe("-failover-abort-*")
                async for message in pubsub.listen():
                    if message["type"] not in ("message", "pmessage"):
                        continue
                    fields = as_bytes(message["data"]).decode().split()
                    channel = as_bytes(message["channel"])
                    if channel != b"+switch-master":
                        # "master <name> <ip> <port>" (+try-failover, -failover-abort-...) or
                        # "slave <ip>:<port> <ip> <port> @ <master name> <ip> <port>"
                        ours = (len(fields) >= 2 and fields[:2] == ["master", name]) or (
                            len(fields) == 8 and fields[4] == "@" and fields[5] == name
                        )
                        if ours and channel.startswith(b"-failover-abort"):
                            self._release()
                        elif ours:
                            self._hold()
                        continue
                    # "<master name> <old ip> <old port> <new ip> <new port>"
                    if len(fields) != 5 or fields[0] != name:
                        continue
                    new = f"{fields[3]}:{fields[4]}"
                    if new == self._last:
                        continue  # the other sentinels announce the same switch
                    self._last = new
                    moved = self._connection.moved
                    moved.pop((fields[3], int(fields[4])), None)
                    moved[(fields[1], int(fields[2]))] = (fields[3], int(fields[4]))
                    log.warning(
                        "Redis master %r moved from %s:%s to %s: reconnecting",
                        name,
                        fields[1],
                        fields[2],
                        new,
                    )
                    self._connection.switches += 1
                    await self._connection.drop_pools()
                    self._release()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a sentinel down: the others still announce
                log.debug("sentinel %s:%s subscription lost: %s", host, port, exc)
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(self._RETRY)

    def _hold(self) -> None:
        if self._reopen is not None:
            return  # another sentinel relayed the same failover
        log.warning(
            "Redis master %r is being failed over: commands wait", self._connection.sentinel_master
        )
        self._connection.gate.clear()
        self._reopen = asyncio.get_running_loop().call_later(self._HOLD, self._release)

    def _release(self) -> None:
        if self._reopen is not None:
            self._reopen.cancel()
            self._reopen = None
        self._connection.gate.set()

    async def stop(self) -> None:
        self._release()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class Script:
    """A Lua script run by EVALSHA, falling back to EVAL (which also caches it on that node)
    when the node answers NOSCRIPT.

    redis-py's own script objects answer NOSCRIPT with a SCRIPT LOAD on the nodes its node
    cache marks as primaries; after a Cluster failover (redis-py 7.4.1) that cache could still
    mark the promoted node a replica while its slot cache routed EVALSHA to it, so every script
    call on the slot failed forever. EVAL goes wherever EVALSHA went (the node of the first
    key), so the fallback cannot miss.

    With ``replicas`` (``wait_replicas``), the call is followed by ``WAIT replicas`` on the same
    connection and returns only once that many replicas have the write. A WAIT that falls short
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
        replicas: int = 0,
        deadline: float | None = None,
        merge: Callable[[Any, Any], Any] | None = None,
        where: str = "Redis",
        connection: RedisConnection | None = None,
    ) -> None:
        self._client = client
        self._where = where
        self._connection = connection
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
        self.replicas = replicas
        self._deadline = 30.0 if deadline is None else deadline
        self._merge = merge

    async def __call__(self, *, keys: list[Any], args: list[Any]) -> Any:
        if not self.replicas:
            return await self._run(keys, args)
        return await self._run_and_wait(keys, args)

    async def _run(self, keys: list[Any], args: list[Any]) -> Any:
        client: Any = self._client
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *args)

    async def _run_and_wait(self, keys: list[Any], args: list[Any]) -> Any:
        client = self._client
        assert isinstance(client, aioredis.Redis), "wait_replicas is refused on a Cluster"
        deadline = time.monotonic() + self._deadline
        earlier: Any = None
        ran = False
        conn = self._connection
        while True:
            switches = conn.switches if conn is not None else 0
            async with client.pipeline(transaction=False) as pipe:
                pipe.evalsha(self.sha, len(keys), *keys, *args)
                pipe.execute_command("WAIT", self.replicas, int(_WAIT_ATTEMPT * 1000))
                reply, acked = await pipe.execute(raise_on_error=False)
            if isinstance(reply, NoScriptError):
                async with client.pipeline(transaction=False) as pipe:
                    pipe.eval(self.source, len(keys), *keys, *args)
                    pipe.execute_command("WAIT", self.replicas, int(_WAIT_ATTEMPT * 1000))
                    reply, acked = await pipe.execute(raise_on_error=False)
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
                    async with asyncio.timeout(SwitchWatcher._HOLD):
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
    connection: RedisConnection | None = None,
) -> Script:
    """The :class:`Script` of the concatenated ``lua/<name>.lua`` files."""
    return Script(
        client,
        lua(*names),
        replicas=replicas,
        deadline=deadline,
        merge=merge,
        where=where,
        connection=connection,
    )


def flags_merge(first: list[Any], again: list[Any]) -> list[Any]:
    """Per item, the first run's answer unless it said 0 ("not done"): a script run again after
    a short WAIT finds what the first run stored and answers 0 for it."""
    return [a if a else b for a, b in zip(first, again, strict=True)]


async def blocking(command: Awaitable[T], timeout: float) -> T:
    """A blocking command (BLPOP) that the server should answer within ``timeout`` seconds:
    given :data:`BLOCKING_GRACE` more, then abandoned with a connection error (cancelling it
    drops its connection in redis-py), so a hung server does not hold a waiter forever."""
    try:
        async with asyncio.timeout(timeout + BLOCKING_GRACE):
            return await command
    except TimeoutError:
        raise RedisConnectionError(
            f"no answer to a blocking wait {BLOCKING_GRACE:g}s past its timeout of {timeout:g}s"
        ) from None


async def done(value: Awaitable[T] | T) -> T:
    """The reply of a command. redis-py types the commands it shares between its clients as
    returning a value or an awaitable; on the async clients used here it is an awaitable."""
    return await value if inspect.isawaitable(value) else value


__all__ = [
    "BLOCKING_GRACE",
    "CONNECTION_OPTIONS",
    "TRANSIENT",
    "Client",
    "RedisCluster",
    "RedisComponent",
    "RedisConnection",
    "RedisConnectionError",
    "Script",
    "aioredis",
    "as_bytes",
    "blocking",
    "done",
    "flags_merge",
    "from_us",
    "key_base",
    "lua",
    "opt_us",
    "pxat_ms",
    "register",
    "split_connection_options",
    "to_us",
]

CONNECTION_OPTIONS = (
    "url",
    "host",
    "port",
    "database",
    "password",
    "username",
    "max_connections",
    "socket_timeout",
    "socket_connect_timeout",
    "retry_on_timeout",
    "ssl",
    "sentinels",
    "sentinel_master",
    "sentinel_password",
    "cluster",
    "cluster_nodes",
    "wait_replicas",
)


def split_connection_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(connection options, the rest) of a component's keyword arguments."""
    conn = {k: options.pop(k) for k in CONNECTION_OPTIONS if k in options}
    return conn, options


class RedisComponent:
    """Connection lifecycle of a Redis component; mixed into each storage class, which calls
    :meth:`_init_redis` from its constructor."""

    _conn: RedisConnection
    _redis: Client | None = None
    #: The component's hash-tagged key prefix (``omniq:tasks:{project}``), set by its constructor.
    _base: str

    def _init_redis(self, connection: dict[str, Any]) -> None:
        self._conn = RedisConnection(**connection)
        self._connection_options = connection
        self._redis = None

    @property
    def redis(self) -> Client:
        """The pooled client (after ``connect()``)."""
        if self._redis is None:
            raise BackendUnavailable(f"{type(self).__name__} is not connected: call connect()")
        return self._redis

    async def _open_client(self) -> Client:
        if self._conn.mode == "cluster":
            await self._conn.order_cluster_nodes()
        if self._conn.mode == "sentinel":
            try:
                await self._conn.check_sentinels()
            except BackendUnavailable:
                await self._conn.aclose()
                raise
        client = self._conn.client()
        try:
            await done(client.ping())
        except (RedisError, RedisClusterException) as exc:
            await client.aclose()
            await self._conn.aclose()
            raise BackendUnavailable(
                f"cannot reach Redis at {self._conn.describe()}: {redact_text(str(exc))}"
            ) from exc
        self._redis = client
        return client

    def _durable(
        self, client: Client, *names: str, merge: Callable[[Any, Any], Any] | None = None
    ) -> Script:
        """A script whose writes are acknowledged only once ``wait_replicas`` replicas have them
        (giving up after ``socket_timeout``); a plain script without ``wait_replicas``."""
        return register(
            client,
            *names,
            replicas=self._conn.wait_replicas,
            deadline=self._conn.socket_timeout,
            merge=merge,
            where=f"Redis at {self._conn.describe()}",
            connection=self._conn if self._conn.mode == "sentinel" else None,
        )

    async def _close_client(self) -> None:
        client, self._redis = self._redis, None
        if client is not None:
            await client.aclose()
        await self._conn.aclose()

    async def _redis_health(self) -> dict[str, Any]:
        client = self.redis
        if isinstance(client, RedisCluster):
            # the node that holds this component's slot: the one its scripts run on
            node = client.get_node_from_key(self._base)
            info = await client.info("server", target_nodes=node)
        else:
            info = await client.info("server")
        return {
            "server": self._conn.describe(),
            "topology": self._conn.mode,
            "redis_version": info.get("redis_version"),
        }
