"""The PostgreSQL backend: task queue, result storage and event storage on asyncpg.

Install with ``pip install 'omniq-tasks[postgres]'``. Each component creates its schema (default
``omniq``) and applies pending migrations on first connect, once, under an advisory lock.
"""

from __future__ import annotations

try:
    import asyncpg  # type: ignore[import-untyped]  # noqa: F401
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    from omniq.exceptions import BackendUnavailable

    raise BackendUnavailable(
        "the PostgreSQL backend needs asyncpg: pip install 'omniq-tasks[postgres]'"
    ) from exc

from omniq.storage.postgres._connection import DEFAULT_SCHEMA, PgSettings
from omniq.storage.postgres.events import AsyncPostgresEventStorage, PostgresEventStorage
from omniq.storage.postgres.queue import AsyncPostgresQueue, PostgresQueue
from omniq.storage.postgres.results import AsyncPostgresResultStorage, PostgresResultStorage

__all__ = [
    "DEFAULT_SCHEMA",
    "AsyncPostgresEventStorage",
    "AsyncPostgresQueue",
    "AsyncPostgresResultStorage",
    "PgSettings",
    "PostgresEventStorage",
    "PostgresQueue",
    "PostgresResultStorage",
]
