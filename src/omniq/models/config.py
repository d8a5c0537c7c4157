"""Typed configuration objects (``msgspec.Struct``).

Each component accepts direct parameters, one of these structs (``from_config``), a dict
(``from_dict``) or a YAML file (``from_config_file``). Backends add their own struct here
(``RedisConfig``, ``PostgresConfig``, ...). Reprs never show passwords.
"""

from __future__ import annotations

from typing import Any

import msgspec

from omniq._redact import redact_value


class ConfigStruct(msgspec.Struct, kw_only=True):
    """Base of every config struct: a redacting repr and a plain-dict view."""

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__struct_fields__}

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f}={redact_value(f, getattr(self, f))!r}" for f in self.__struct_fields__
        )
        return f"{type(self).__name__}({shown})"

    __str__ = __repr__

    def __rich_repr__(self) -> Any:  # keep rich/pretty printers on the redacted view too
        for f in self.__struct_fields__:
            yield f, redact_value(f, getattr(self, f))


class TaskQueueConfig(ConfigStruct):
    """Options every task queue understands, whatever its backend."""

    project_name: str = "default"
    queues: list[str] | None = None
    lease_timeout: float | None = None
    secret_key: str | None = None
    allow_dill: bool | None = None


class MemoryTaskQueueConfig(TaskQueueConfig):
    name: str | None = None


class MemoryResultStorageConfig(ConfigStruct):
    project_name: str = "default"
    name: str | None = None


class MemoryEventStorageConfig(ConfigStruct):
    project_name: str = "default"
    name: str | None = None
    max_events: int = 100_000


# -- SQLite --------------------------------------------------------------------------------
class SQLiteConfig(ConfigStruct):
    """Where the SQLite backend keeps its file: ``path`` (a file path or ``sqlite:///`` URL), or
    else ``<base_dir>/<project_name>.db`` (``base_dir`` defaults to settings ``BASE_DIR``).
    ``busy_timeout`` (seconds) is how long a write waits for another process's transaction."""

    project_name: str = "default"
    base_dir: str | None = None
    path: str | None = None
    busy_timeout: float | None = None
    queues: list[str] | None = None
    lease_timeout: float | None = None
    secret_key: str | None = None
    allow_dill: bool | None = None


class SQLiteTaskQueueConfig(TaskQueueConfig):
    base_dir: str | None = None
    path: str | None = None
    busy_timeout: float | None = None


class SQLiteResultStorageConfig(ConfigStruct):
    project_name: str = "default"
    base_dir: str | None = None
    path: str | None = None
    busy_timeout: float | None = None
    secret_key: str | None = None
    allow_dill: bool | None = None


class SQLiteEventStorageConfig(ConfigStruct):
    project_name: str = "default"
    base_dir: str | None = None
    path: str | None = None
    busy_timeout: float | None = None


# -- Redis ---------------------------------------------------------------------------------
class RedisConfig(ConfigStruct):
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

    host: str = "localhost"
    port: int = 6379
    database: int = 0
    password: str | None = None
    max_connections: int = 10
    socket_timeout: float = 30.0
    socket_connect_timeout: float = 30.0
    retry_on_timeout: bool = True
    ssl: bool = False
    tasks_prefix: str = "omniq:tasks"
    results_prefix: str = "omniq:results"
    events_prefix: str = "omniq:events"
    url: str | None = None
    sentinels: list[str] | None = None
    sentinel_master: str = "mymaster"
    sentinel_password: str | None = None
    cluster: bool = False
    cluster_nodes: list[str] | None = None
    #: Redis replicates asynchronously: an acknowledged enqueue can be lost when a replica is
    #: promoted before it had it. N > 0 makes every enqueue and acknowledgement wait (WAIT)
    #: until N replicas have it (single server or Sentinel; not on a Cluster).
    wait_replicas: int = 0


# -- PostgreSQL ----------------------------------------------------------------------------
class PostgresConfig(ConfigStruct):
    """Connection of the PostgreSQL backend (seeds/002, 003). ``dsn`` or ``url``
    (``postgresql://user:password@host:port/database?schema=name``) combines with the explicit
    fields, which win when set; unset fields follow libpq's defaults (``database``: the user
    name). ``schema`` holds OmniQ's tables and is created and migrated on first connect."""

    host: str | None = None
    port: int | None = None
    username: str | None = None
    password: str | None = None
    database: str | None = None
    dsn: str | None = None
    url: str | None = None
    schema: str = "omniq"
    min_size: int = 1
    max_size: int = 10
    ssl: bool | str | None = None
    statement_cache_size: int = 100
    command_timeout: float | None = None
    connect_timeout: float = 10.0


class PostgresTaskQueueConfig(PostgresConfig):
    project_name: str = "default"
    queues: list[str] | None = None
    lease_timeout: float | None = None
    secret_key: str | None = None
    allow_dill: bool | None = None


class PostgresResultStorageConfig(PostgresConfig):
    project_name: str = "default"
    secret_key: str | None = None
    allow_dill: bool | None = None


class PostgresEventStorageConfig(PostgresConfig):
    project_name: str = "default"


class ComponentSpec(ConfigStruct):
    """One component of an ``OmniQConfig``: a backend ``type`` (or a ``url``) and its options."""

    type: str | None = None
    url: str | None = None
    config: dict[str, Any] = msgspec.field(default_factory=dict)


class WorkerSpec(ConfigStruct):
    type: str = "async"
    config: dict[str, Any] = msgspec.field(default_factory=dict)


class OmniQConfig(ConfigStruct):
    """The whole application, as in the YAML example of seeds/003."""

    project_name: str = "default"
    task_queue: ComponentSpec | None = None
    result_store: ComponentSpec | None = None
    event_store: ComponentSpec | None = None
    worker: WorkerSpec | None = None
    secret_key: str | None = None


__all__ = [
    "ComponentSpec",
    "ConfigStruct",
    "MemoryEventStorageConfig",
    "MemoryResultStorageConfig",
    "MemoryTaskQueueConfig",
    "OmniQConfig",
    "PostgresConfig",
    "PostgresEventStorageConfig",
    "PostgresResultStorageConfig",
    "PostgresTaskQueueConfig",
    "RedisConfig",
    "SQLiteConfig",
    "SQLiteEventStorageConfig",
    "SQLiteResultStorageConfig",
    "SQLiteTaskQueueConfig",
    "TaskQueueConfig",
    "WorkerSpec",
]
