"""Options of the PostgreSQL backend's components."""

from __future__ import annotations

from omniq.models.config import ConfigStruct


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


__all__ = [
    "PostgresConfig",
    "PostgresEventStorageConfig",
    "PostgresResultStorageConfig",
    "PostgresTaskQueueConfig",
]
