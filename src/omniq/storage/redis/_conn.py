"""What the three Redis components share: connection settings, pools, scripts and key prefixes.

Every key of one project carries the project name as its Cluster hash tag, ``<prefix>:{<project>}``
(``omniq:tasks:{default}:task:<id>``, ``omniq:results:{default}:result:<id>``): all keys of a
project hash to one slot, so every Lua script touches a single slot and a completion can write
results and acknowledgements in one script even on Redis Cluster. The price is that one project
lives on one shard; separate projects spread over the cluster.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, TypeAlias, TypeVar
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

from omniq._redact import redact_text, redact_url
from omniq.exceptions import BackendUnavailable, ConfigError

try:
    import redis.asyncio as aioredis
    from redis.asyncio.cluster import ClusterNode, RedisCluster
    from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
    from redis.commands.core import AsyncScript
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisClusterException, RedisError
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installed extras
    raise ModuleNotFoundError(
        "the Redis backend needs the 'redis' package: pip install 'omniq-tasks[redis]'",
        name=exc.name,
    ) from exc

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
T = TypeVar("T")

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


class _BlockingSentinelPool(SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """redis-py's Sentinel pool (it asks the sentinels where the master is at each connect)
    with the waiting of its blocking pool: callers beyond ``max_connections`` wait."""


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
    ) -> None:
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
        self._options: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_connect_timeout,
            "retry_on_timeout": retry_on_timeout,
        }
        #: "single", "sentinel" or "cluster"
        self.mode = "single"
        self._nodes: list[tuple[str, int]] = []
        self.sentinel_master = sentinel_master
        self._sentinel_kwargs: dict[str, Any] = {}
        self._sentinel: Sentinel | None = None
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
                    "(only sentinel_password is read from the query)"
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
                "password": sentinel_password,
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
            master: aioredis.Redis = self._sentinel_manager().master_for(
                self.sentinel_master,
                redis_class=aioredis.Redis,
                connection_pool_class=_BlockingSentinelPool,
                max_connections=self.max_connections,
                timeout=self.socket_timeout,
                **self._options,
            )
            return master
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
        carries its own), never counted against ``max_connections``."""
        if self.mode == "sentinel":
            waiter: aioredis.Redis = self._sentinel_manager().master_for(
                self.sentinel_master,
                redis_class=aioredis.Redis,
                **{**self._options, "socket_timeout": None},
            )
            return waiter
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


def register(client: Client, *names: str) -> AsyncScript:
    """A script object that runs by EVALSHA and loads itself once when the server lacks it
    (on a Cluster, EVALSHA goes to the node of its first key; SCRIPT LOAD to every node)."""
    return AsyncScript(client, lua(*names))  # type: ignore[arg-type]  # typed for Redis only


async def done(value: Awaitable[T] | T) -> T:
    """The reply of a command. redis-py types the commands it shares between its clients as
    returning a value or an awaitable; on the async clients used here it is an awaitable."""
    return await value if inspect.isawaitable(value) else value


__all__ = [
    "CONNECTION_OPTIONS",
    "AsyncScript",
    "Client",
    "RedisCluster",
    "RedisComponent",
    "RedisConnection",
    "aioredis",
    "as_bytes",
    "done",
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
