"""What the three Redis components share: connections, scripts and key prefixes.

Every key of one project carries the project name as its Cluster hash tag, ``<prefix>:{<project>}``
(``omniq:tasks:{default}:task:<id>``, ``omniq:results:{default}:result:<id>``): all keys of a
project hash to one slot, so every Lua script touches a single slot and a completion can write
results and acknowledgements in one script even on Redis Cluster. The price is that one project
lives on one shard; separate projects spread over the cluster.

The parts live beside this module: the options (``_options``), Sentinel (``_sentinel``), Cluster
(``_cluster``) and the scripts (``_scripts``); the components import what they need from here.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from omniq._redact import redact_text, redact_url
from omniq.exceptions import BackendUnavailable, ConfigError

try:
    import redis.asyncio as aioredis
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisClusterException, RedisError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installed extras
    raise ModuleNotFoundError(
        "the Redis backend needs the 'redis' package: pip install 'omniq-tasks[redis]'",
        name=exc.name,
    ) from exc

from omniq.storage.redis._cluster import (
    ClusterFollower,
    RedisCluster,
    cluster_client,
    rank_startup_nodes,
    slot_node_client,
)
from omniq.storage.redis._options import (
    CONNECTION_OPTIONS,
    ConnectionOptions,
    resolve,
    split_connection_options,
)
from omniq.storage.redis._scripts import (
    Client,
    Script,
    close_lane,
    flags_merge,
    is_missing,
    lua,
    open_lane,
    register,
)
from omniq.storage.redis._sentinel import BlockingSentinelPool, SentinelFollower

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
T = TypeVar("T")
log = logging.getLogger("omniq.storage.redis")

#: Errors that say the server is unreachable, hung or (briefly, during a failover) refusing:
#: worth another try on the same or the new master.
TRANSIENT = (RedisConnectionError, RedisTimeoutError, RedisClusterException, OSError)
#: A blocking wait (BLPOP) the server has not answered this long after its own timeout
#: means a hung server (stopped, or a network that drops packets): the wait is abandoned.
BLOCKING_GRACE = 5.0


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


def key_base(prefix: str, project: str, *, option: str) -> str:
    """``omniq:tasks`` + project ``default`` -> ``omniq:tasks:{default}`` (hash-tagged)."""
    if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
        raise ConfigError(
            f"{option} must be a non-empty string without '{{' or '}}' (the project name is "
            f"the Cluster hash tag), got {prefix!r}"
        )
    return f"{prefix}:{{{project}}}"


class RedisConnection:
    """The clients of one set of :class:`ConnectionOptions`, for a single server, a
    Sentinel-managed master or a Cluster; redis-py does the topology work
    (``redis.asyncio.sentinel.Sentinel``, ``redis.asyncio.cluster.RedisCluster``).

    The main client blocks callers when all ``max_connections`` are busy instead of failing, so
    thousands of concurrent callers share a few connections (on a Cluster: per node). Blocking
    waits (BLPOP, pub/sub) use clients of their own outside it: a waiting claimer never
    starves the pool.
    """

    def __init__(self, options: ConnectionOptions) -> None:
        self.topology = resolve(options)
        opts = self.topology.options
        self.url = opts.url
        self.max_connections = opts.max_connections
        self.socket_timeout = opts.socket_timeout
        self.wait_replicas = opts.wait_replicas
        self.sentinel_master = opts.sentinel_master
        #: "single", "sentinel" or "cluster"
        self.mode = self.topology.mode
        self._options = self.topology.redis_kwargs
        #: the Sentinel side (the failover gate, the switches heard), for a Sentinel master
        self.sentinel: SentinelFollower | None = None
        if self.mode == "sentinel":
            self.sentinel = SentinelFollower(
                self.topology.nodes, opts.sentinel_master, self.topology.sentinel_kwargs
            )
        #: the Cluster side (the slot map, the masters left), for a Cluster
        self.cluster: ClusterFollower | None = None
        if self.mode == "cluster":
            self.cluster = ClusterFollower(self.topology)

    @property
    def _nodes(self) -> list[tuple[str, int]]:
        return self.topology.nodes

    # -- clients ----------------------------------------------------------------------------
    def _pool(self, cls: type[aioredis.ConnectionPool], **options: Any) -> aioredis.ConnectionPool:
        merged = {**self._options, **options}
        if self.url is not None:
            return cls.from_url(self.url, **merged)
        return cls(**merged)

    async def order_cluster_nodes(self) -> None:
        """The Cluster's startup nodes that answer first (see :func:`rank_startup_nodes`),
        and the slot map the follower starts from."""
        await rank_startup_nodes(self.topology)
        assert self.cluster is not None
        await self.cluster.refresh()

    async def check_sentinels(self) -> None:
        """Refuses at once, in one line per sentinel, when no sentinel knows the master."""
        assert self.sentinel is not None
        await self.sentinel.check(self.describe())

    def client(self) -> Client:
        """The pooled client for every command that answers at once."""
        if self.sentinel is not None:
            return self.sentinel.master(
                connection_pool_class=BlockingSentinelPool,
                max_connections=self.max_connections,
                timeout=self.socket_timeout,
                **self._options,
            )
        if self.cluster is not None:
            return cluster_client(self.topology, self.max_connections, self.cluster)
        pool = self._pool(
            aioredis.BlockingConnectionPool,
            max_connections=self.max_connections,
            timeout=self.socket_timeout,
        )
        return aioredis.Redis.from_pool(pool)

    def blocking_client(self) -> Client:
        """A client for blocking waits: one connection per waiter, no read timeout (the wait
        carries its own, see :func:`blocking`), never counted against ``max_connections``."""
        if self.sentinel is not None:
            return self.sentinel.master(**{**self._options, "socket_timeout": None})
        if self.cluster is not None:
            return cluster_client(
                self.topology, None, self.cluster, socket_timeout=None, max_connections=2**31
            )
        pool = self._pool(aioredis.ConnectionPool, socket_timeout=None)
        return aioredis.Redis.from_pool(pool)

    async def subscriber(self, channel: str) -> aioredis.Redis:
        """A client for a pub/sub subscription to ``channel``. On a Cluster, a plain client of
        the node that holds the channel's slot, where the scripts that publish on it run
        (redis-py's async cluster client has no pub/sub; a PUBLISH reaches every node
        anyway). Called again at each resubscription, so a moved slot is followed."""
        if self.cluster is None:
            client = self.blocking_client()
            assert isinstance(client, aioredis.Redis)
            return client
        return await slot_node_client(self.topology, self.cluster, channel, self.describe())

    async def aclose(self) -> None:
        """Closes the connections to the sentinels, or stops following the Cluster (the
        clients close their own)."""
        if self.sentinel is not None:
            await self.sentinel.aclose()
        if self.cluster is not None:
            await self.cluster.aclose()

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
    "ConnectionOptions",
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
    "is_missing",
    "key_base",
    "lua",
    "opt_us",
    "pxat_ms",
    "register",
    "split_connection_options",
    "to_us",
]


class RedisComponent:
    """Connection lifecycle of a Redis component; mixed into each storage class, which calls
    :meth:`_init_redis` from its constructor."""

    _conn: RedisConnection
    _redis: Client | None = None
    #: The component's hash-tagged key prefix (``omniq:tasks:{project}``), set by its constructor.
    _base: str

    def _init_redis(self, connection: dict[str, Any]) -> None:
        self._conn = RedisConnection(ConnectionOptions(**connection))
        self._connection_options = connection
        self._redis = None

    def server_label(self) -> str:
        return f"Redis at {self._conn.describe()}"

    def _is_outage(self, exc: BaseException) -> bool:
        return isinstance(exc, (*TRANSIENT, BackendUnavailable))

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
        open_lane(client)
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
            follower=self._conn.sentinel,
        )

    async def _close_client(self) -> None:
        client, self._redis = self._redis, None
        if client is not None:
            await close_lane(client)
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
