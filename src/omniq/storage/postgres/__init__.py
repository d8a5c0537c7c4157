"""The PostgreSQL backend: task queue, result storage and event storage on asyncpg.

Install with ``pip install 'omniq-tasks[postgres]'``. Each component creates its schema (default
``omniq``) and applies pending migrations on first connect, once, under an advisory lock. Names
are imported on first use, so that ``config`` reads without the driver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omniq.storage.registry import lazy_getattr, submodule_exports

if TYPE_CHECKING:
    from omniq.storage.postgres._connection import DEFAULT_SCHEMA, PgSettings
    from omniq.storage.postgres.backend import AsyncPostgresBackend, PostgresBackend
    from omniq.storage.postgres.config import (
        PostgresConfig,
        PostgresEventStorageConfig,
        PostgresResultStorageConfig,
        PostgresTaskQueueConfig,
    )
    from omniq.storage.postgres.events import AsyncPostgresEventStorage, PostgresEventStorage
    from omniq.storage.postgres.queue import AsyncPostgresQueue, PostgresQueue
    from omniq.storage.postgres.results import AsyncPostgresResultStorage, PostgresResultStorage

_EXPORTS = submodule_exports(
    __name__,
    {
        "queue": ("AsyncPostgresQueue", "PostgresQueue"),
        "results": ("AsyncPostgresResultStorage", "PostgresResultStorage"),
        "events": ("AsyncPostgresEventStorage", "PostgresEventStorage"),
        "backend": ("AsyncPostgresBackend", "PostgresBackend"),
        "config": (
            "PostgresConfig",
            "PostgresTaskQueueConfig",
            "PostgresResultStorageConfig",
            "PostgresEventStorageConfig",
        ),
        "_connection": ("DEFAULT_SCHEMA", "PgSettings"),
    },
)
__getattr__ = lazy_getattr(__name__, _EXPORTS)

__all__ = [
    "DEFAULT_SCHEMA",
    "AsyncPostgresBackend",
    "AsyncPostgresEventStorage",
    "AsyncPostgresQueue",
    "AsyncPostgresResultStorage",
    "PgSettings",
    "PostgresBackend",
    "PostgresConfig",
    "PostgresEventStorage",
    "PostgresEventStorageConfig",
    "PostgresQueue",
    "PostgresResultStorage",
    "PostgresResultStorageConfig",
    "PostgresTaskQueueConfig",
]
