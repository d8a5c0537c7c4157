"""What the three Redis components share: connection settings, pools, scripts and key prefixes.

Every key of one project carries the project name as its Cluster hash tag, ``<prefix>:{<project>}``
(``omniq:tasks:{default}:task:<id>``, ``omniq:results:{default}:result:<id>``): all keys of a
project hash to one slot, so every Lua script touches a single slot and a completion can write
results and acknowledgements in one script even on Redis Cluster. The price is that one project
lives on one shard; separate projects spread over the cluster.
"""

from __future__ import annotations

import functools
import math
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

from omniq._redact import redact_text, redact_url
from omniq.exceptions import BackendUnavailable, ConfigError

try:
    import redis.asyncio as aioredis
    from redis.commands.core import AsyncScript
    from redis.exceptions import RedisError
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installed extras
    raise ModuleNotFoundError(
        "the Redis backend needs the 'redis' package: pip install 'omniq-tasks[redis]'",
        name=exc.name,
    ) from exc

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


class RedisConnection:
    """Connection settings and the pool built from them (seeds/001 options, or a URL).

    The main pool blocks callers when all ``max_connections`` are busy instead of failing, so
    thousands of concurrent callers share a few connections. Blocking waits (BLPOP, pub/sub)
    use connections of their own outside it: a waiting claimer never starves the pool.
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
    ) -> None:
        if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
            scheme = url.partition("://")[0]
            raise ConfigError(
                f"Redis URL scheme {scheme!r} is not supported: use redis://, rediss:// or "
                "unix:// (Sentinel and Cluster URLs are not available in this version)"
            )
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
        self.url = url
        self.max_connections = max_connections
        self.socket_timeout = socket_timeout
        self._options: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_connect_timeout,
            "retry_on_timeout": retry_on_timeout,
        }
        if url is None:
            self._options.update(host=host, port=port, db=database, password=password)
            if username is not None:
                self._options["username"] = username
            if ssl:
                self._options["connection_class"] = aioredis.SSLConnection

    def _pool(self, cls: type[aioredis.ConnectionPool], **options: Any) -> aioredis.ConnectionPool:
        merged = {**self._options, **options}
        if self.url is not None:
            return cls.from_url(self.url, **merged)
        return cls(**merged)

    def client(self) -> aioredis.Redis:
        """The pooled client for every command that answers at once."""
        pool = self._pool(
            aioredis.BlockingConnectionPool,
            max_connections=self.max_connections,
            timeout=self.socket_timeout,
        )
        return aioredis.Redis(connection_pool=pool)

    def blocking_client(self) -> aioredis.Redis:
        """A client for blocking waits: one connection per waiter, no read timeout (the wait
        carries its own), never counted against ``max_connections``."""
        pool = self._pool(aioredis.ConnectionPool, socket_timeout=None)
        return aioredis.Redis(connection_pool=pool)

    @functools.cached_property
    def target(self) -> tuple[Any, ...]:
        """Which server and database this connects to, to tell whether two components share one."""
        kw = self._pool(aioredis.ConnectionPool).connection_kwargs
        return (kw.get("host"), kw.get("port"), kw.get("path"), int(kw.get("db") or 0))

    def describe(self) -> str:
        """Where this connects, for messages (a password in the URL is masked)."""
        if self.url is not None:
            return redact_url(self.url)
        host, port, _, db = self.target
        return f"{host}:{port}/{db}"


def register(client: aioredis.Redis, *names: str) -> AsyncScript:
    """A script object that runs by EVALSHA and loads itself once when the server lacks it."""
    return client.register_script(lua(*names))


__all__ = [
    "CONNECTION_OPTIONS",
    "AsyncScript",
    "RedisComponent",
    "RedisConnection",
    "aioredis",
    "as_bytes",
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
)


def split_connection_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(connection options, the rest) of a component's keyword arguments."""
    conn = {k: options.pop(k) for k in CONNECTION_OPTIONS if k in options}
    return conn, options


class RedisComponent:
    """Connection lifecycle of a Redis component; mixed into each storage class, which calls
    :meth:`_init_redis` from its constructor."""

    _conn: RedisConnection
    _redis: aioredis.Redis | None = None

    def _init_redis(self, connection: dict[str, Any]) -> None:
        self._conn = RedisConnection(**connection)
        self._connection_options = connection
        self._redis = None

    @property
    def redis(self) -> aioredis.Redis:
        """The pooled client (after ``connect()``)."""
        if self._redis is None:
            raise BackendUnavailable(f"{type(self).__name__} is not connected: call connect()")
        return self._redis

    async def _open_client(self) -> aioredis.Redis:
        client = self._conn.client()
        try:
            await client.ping()
        except RedisError as exc:
            await client.aclose()
            raise BackendUnavailable(
                f"cannot reach Redis at {self._conn.describe()}: {redact_text(str(exc))}"
            ) from exc
        self._redis = client
        return client

    async def _close_client(self) -> None:
        client, self._redis = self._redis, None
        if client is not None:
            await client.aclose()

    async def _redis_health(self) -> dict[str, Any]:
        info = await self.redis.info("server")
        return {"server": self._conn.describe(), "redis_version": info.get("redis_version")}
