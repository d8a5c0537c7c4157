"""The Redis connection options (seeds/001, or a URL), checked once and resolved into the
topology (single server, Sentinel or Cluster) and the keyword arguments of redis-py's clients.

Kept apart from the clients so that every bad value is refused, naming it, before anything
connects, and so that the clients' code reads one resolved :class:`Topology` instead of
seventeen loose parameters.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import SplitResult, parse_qs, parse_qsl, unquote, urlencode, urlsplit

import msgspec
from redis.asyncio.connection import SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from omniq._redact import redact_url
from omniq.exceptions import ConfigError
from omniq.storage.redis.config import RedisConnectionOptions

Mode = Literal["single", "sentinel", "cluster"]

#: TCP keepalive on every connection: a peer that vanished without a word (host down, cable
#: cut) is noticed by the kernel within seconds instead of the system's two hours.
KEEPALIVE = {
    getattr(socket, name): value
    for name, value in (("TCP_KEEPIDLE", 5), ("TCP_KEEPINTVL", 2), ("TCP_KEEPCNT", 3))
    if hasattr(socket, name)
}
#: A pooled connection idle this long sends a PING before its next command, so one that died
#: while idle is replaced before a command is lost on it.
HEALTH_CHECK_INTERVAL = 10

#: URL schemes of each topology (``redis+sentinel://`` as Prefect, RedisVL and
#: Redis-Sentinel-Url spell it; ``redis+cluster://`` by analogy), and whether they use TLS.
PLAIN_SCHEMES = {"redis": False, "rediss": True, "unix": False}
SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}
CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}
SENTINEL_PORT = 26379


#: Every connection option a Redis component takes (its repr hides the passwords).
ConnectionOptions = RedisConnectionOptions

#: The names of :class:`ConnectionOptions`, told apart from a component's other options.
CONNECTION_OPTIONS: tuple[str, ...] = ConnectionOptions.__struct_fields__


def split_connection_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(connection options, the rest) of a component's keyword arguments."""
    conn = {k: options.pop(k) for k in CONNECTION_OPTIONS if k in options}
    return conn, options


@dataclass
class Topology:
    """What the options resolve to: the topology, its nodes (sentinels or Cluster startup
    nodes; empty for a single server or a Cluster given by a plain URL), the keyword arguments
    of every data connection, and those of the connections to the sentinels."""

    mode: Mode
    options: ConnectionOptions
    nodes: list[tuple[str, int]] = field(default_factory=list)
    redis_kwargs: dict[str, Any] = field(default_factory=dict)
    sentinel_kwargs: dict[str, Any] = field(default_factory=dict)


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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check(opts: ConnectionOptions) -> None:
    """Refuses a bad value, naming it, before anything connects."""
    if not _is_int(opts.wait_replicas) or opts.wait_replicas < 0:
        raise ConfigError(f"wait_replicas must be an int >= 0, got {opts.wait_replicas!r}")
    if not _is_int(opts.max_connections):
        raise ConfigError(f"max_connections must be an int, got {opts.max_connections!r}")
    if opts.max_connections < 2:
        raise ConfigError(f"max_connections must be >= 2, got {opts.max_connections!r}")
    if not _is_int(opts.port) or not 0 < opts.port < 65536:
        raise ConfigError(f"port must be an int in 1..65535, got {opts.port!r}")
    if not _is_int(opts.database) or opts.database < 0:
        raise ConfigError(f"database must be an int >= 0, got {opts.database!r}")
    for name in ("socket_timeout", "socket_connect_timeout"):
        value = getattr(opts, name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
        ):
            raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
    if not isinstance(opts.sentinel_master, str) or not opts.sentinel_master:
        raise ConfigError(
            f"sentinel_master must be a non-empty string, got {opts.sentinel_master!r}"
        )


def _mode(opts: ConnectionOptions) -> tuple[Mode, str | None]:
    """The topology the options name, and the URL's scheme."""
    url = opts.url
    scheme = url.partition("://")[0].lower() if url is not None else None
    known = {*PLAIN_SCHEMES, *SENTINEL_SCHEMES, *CLUSTER_SCHEMES}
    if url is not None and (scheme not in known or "://" not in url):
        raise ConfigError(
            f"Redis URL scheme {scheme!r} is not supported: use one of "
            f"{', '.join(f'{s}://' for s in sorted(known))}"
        )
    sentinel = scheme in SENTINEL_SCHEMES or opts.sentinels is not None
    if scheme in CLUSTER_SCHEMES or opts.cluster or opts.cluster_nodes is not None:
        if sentinel:
            raise ConfigError("a Redis connection is either Sentinel or Cluster, not both")
        return "cluster", scheme
    return ("sentinel" if sentinel else "single"), scheme


def _url_database(text: str, url: str) -> int:
    if not text.isdigit():
        raise ConfigError(f"Redis URL {redact_url(url)!r}: database {text!r} is not a number")
    return int(text)


def _read_url(opts: ConnectionOptions, mode: Mode, scheme: str) -> ConnectionOptions:
    """A Sentinel or Cluster URL read into the options; explicit options fill what it omits."""
    url = opts.url
    assert url is not None
    nodes, parts = _url_nodes(url, SENTINEL_PORT if mode == "sentinel" else 6379)
    changes: dict[str, Any] = {"ssl": opts.ssl or {**SENTINEL_SCHEMES, **CLUSTER_SCHEMES}[scheme]}
    if parts.password is not None:
        changes["password"] = unquote(parts.password)
    if parts.username:
        changes["username"] = unquote(parts.username)
    path = [unquote(p) for p in parts.path.split("/") if p]
    query = parse_qs(parts.query)
    unknown = sorted(set(query) - {"sentinel_password"})
    if unknown:
        raise ConfigError(
            f"Redis URL {redact_url(url)!r}: unknown option(s) {unknown} "
            "(only sentinel_password and wait_replicas are read from the query)"
        )
    if "sentinel_password" in query:
        changes["sentinel_password"] = query["sentinel_password"][-1]
    addresses = [f"{h}:{p}" for h, p in nodes]
    if mode == "sentinel":
        if len(path) > 2:
            raise ConfigError(
                f"Redis URL {redact_url(url)!r}: expected /<master name>[/<database>]"
            )
        if path:
            changes["sentinel_master"] = path[0]
        if len(path) == 2:
            changes["database"] = _url_database(path[1], url)
        changes["sentinels"] = addresses
    else:
        if len(path) > 1:
            raise ConfigError(f"Redis URL {redact_url(url)!r}: a cluster URL has no path")
        changes["database"] = _url_database(path[0], url) if path else 0
        changes["cluster_nodes"] = addresses
    return msgspec.structs.replace(opts, **changes)


def _base_kwargs(opts: ConnectionOptions) -> dict[str, Any]:
    """What every data connection gets, whatever the topology."""
    return {
        "socket_timeout": opts.socket_timeout,
        "socket_connect_timeout": opts.socket_connect_timeout,
        "retry_on_timeout": opts.retry_on_timeout,
        "socket_keepalive": True,
        "socket_keepalive_options": KEEPALIVE,
        "health_check_interval": HEALTH_CHECK_INTERVAL,
    }


def _single(opts: ConnectionOptions) -> Topology:
    kwargs = _base_kwargs(opts)
    if opts.url is None:
        kwargs.update(host=opts.host, port=opts.port, db=opts.database, password=opts.password)
        if opts.username is not None:
            kwargs["username"] = opts.username
        if opts.ssl:
            kwargs["connection_class"] = SSLConnection
    # else redis-py parses the URL itself (redis://, rediss://, unix://)
    return Topology("single", opts, redis_kwargs=kwargs)


def _sentinel_kwargs(opts: ConnectionOptions) -> dict[str, Any]:
    return {
        "socket_timeout": opts.socket_timeout,
        "socket_connect_timeout": opts.socket_connect_timeout,
        "socket_keepalive": True,
        "socket_keepalive_options": KEEPALIVE,
        "password": opts.sentinel_password,
        # one try per sentinel: asking the next sentinel is the retry. redis-py's default (3
        # retries with up to 10 s of backoff, per sentinel, inside each of the master
        # connection's own retries) made a wrong sentinel password take 48-90 s to be reported
        "retry": Retry(NoBackoff(), 0),
    }


def resolve(given: ConnectionOptions) -> Topology:
    """The options checked and resolved (see :class:`Topology`)."""
    opts = given
    if opts.url is not None and "wait_replicas=" in opts.url:
        url, replicas = _take_wait_replicas(opts.url, opts.wait_replicas)
        opts = msgspec.structs.replace(opts, url=url, wait_replicas=replicas)
    _check(opts)
    mode, scheme = _mode(opts)
    if mode == "single":
        return _single(opts)
    if scheme in PLAIN_SCHEMES:
        # cluster=True with a plain URL: redis-py's RedisCluster.from_url reads it
        if opts.cluster_nodes is not None:
            raise ConfigError("give the cluster's startup nodes as url or cluster_nodes, not both")
        return Topology("cluster", opts, redis_kwargs=_base_kwargs(opts))
    if opts.url is not None:
        assert scheme is not None
        opts = _read_url(opts, mode, scheme)
    kwargs = {**_base_kwargs(opts), "password": opts.password}
    if opts.username is not None:
        kwargs["username"] = opts.username
    if opts.ssl:
        kwargs["ssl"] = True  # SentinelConnectionPool and RedisCluster pick their SSL class
    if mode == "sentinel":
        kwargs["db"] = opts.database
        nodes = _addresses(opts.sentinels, SENTINEL_PORT, option="sentinels")
        return Topology(mode, opts, nodes, kwargs, _sentinel_kwargs(opts))
    nodes = _addresses(
        opts.cluster_nodes if opts.cluster_nodes is not None else [f"{opts.host}:{opts.port}"],
        6379,
        option="cluster_nodes",
    )
    if opts.database:
        raise ConfigError(f"Redis Cluster has only database 0, got database={opts.database!r}")
    return Topology(mode, opts, nodes, kwargs)


__all__ = [
    "CONNECTION_OPTIONS",
    "ConnectionOptions",
    "Topology",
    "parse_address",
    "resolve",
    "split_connection_options",
]
