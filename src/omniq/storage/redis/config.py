"""Options of the Redis backend (one struct serves all three components)."""

from __future__ import annotations

from omniq.models.config import ConfigStruct


class RedisConnectionOptions(ConfigStruct, kw_only=True):
    """Where and how a Redis component connects: the connection part of :class:`RedisConfig`
    (the components take these as keyword arguments and resolve them in ``_options``)."""

    url: str | None = None
    host: str = "localhost"
    port: int = 6379
    database: int = 0
    password: str | None = None
    username: str | None = None
    max_connections: int = 10
    socket_timeout: float | None = 30.0
    socket_connect_timeout: float | None = 30.0
    retry_on_timeout: bool = True
    ssl: bool = False
    sentinels: list[str] | None = None
    sentinel_master: str = "mymaster"
    sentinel_password: str | None = None
    cluster: bool = False
    cluster_nodes: list[str] | None = None
    #: Redis replicates asynchronously: an acknowledged enqueue can be lost when a replica is
    #: promoted before it had it. N > 0 makes every enqueue and acknowledgement wait (WAIT)
    #: until N replicas have it (single server, Sentinel or Cluster).
    wait_replicas: int = 0


class RedisConfig(RedisConnectionOptions, kw_only=True):
    """Connection and key layout of the Redis backend (seeds/001). ``url`` (``redis://`` or
    ``rediss://``, with user, password and database in it) takes precedence over host, port,
    database, password and ssl when given.

    Sentinel: ``sentinels`` (``["host:26379", ...]``) and ``sentinel_master`` (the monitored
    master's name) find the master, ``password`` is the master's and ``sentinel_password`` the
    sentinels' own; or one URL, ``redis+sentinel://[user:password@]host:port[,host:port]/
    <master>[/<database>][?sentinel_password=...]`` (``rediss+sentinel://`` for TLS).

    Cluster: ``cluster=True`` with ``host``/``port`` (or a ``redis://`` url) as the node to start
    from, or ``cluster_nodes=["host:port", ...]``; or ``redis+cluster://host:port[,host:port]``.
    A Cluster has database 0 only; each project's keys live in one slot (its name is their hash
    tag), so projects spread over the shards.
    """

    tasks_prefix: str = "omniq:tasks"
    results_prefix: str = "omniq:results"
    events_prefix: str = "omniq:events"


__all__ = ["RedisConfig", "RedisConnectionOptions"]
