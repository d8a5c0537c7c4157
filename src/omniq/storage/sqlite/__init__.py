"""The SQLite backend: OmniQ's embedded default, durable and shared by every process on a machine.

One file holds tasks, schedules, results and events (``<base_dir>/<project_name>.db``, or any
``path``). See ``queue`` for how tasks are claimed, ``_db`` for durability and migrations, and
``_wake`` for how idle workers and result waiters wake up without polling.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omniq.storage.registry import lazy_getattr, submodule_exports

if TYPE_CHECKING:
    from omniq.storage.sqlite.backend import AsyncSQLiteBackend, SQLiteBackend
    from omniq.storage.sqlite.config import (
        SQLiteConfig,
        SQLiteEventStorageConfig,
        SQLiteResultStorageConfig,
        SQLiteTaskQueueConfig,
    )
    from omniq.storage.sqlite.events import AsyncSQLiteEventStorage, SQLiteEventStorage
    from omniq.storage.sqlite.queue import AsyncSQLiteQueue, SQLiteQueue
    from omniq.storage.sqlite.results import AsyncSQLiteResultStorage, SQLiteResultStorage

_EXPORTS = submodule_exports(
    __name__,
    {
        "queue": ("AsyncSQLiteQueue", "SQLiteQueue"),
        "results": ("AsyncSQLiteResultStorage", "SQLiteResultStorage"),
        "events": ("AsyncSQLiteEventStorage", "SQLiteEventStorage"),
        "backend": ("AsyncSQLiteBackend", "SQLiteBackend"),
        "config": (
            "SQLiteConfig",
            "SQLiteTaskQueueConfig",
            "SQLiteResultStorageConfig",
            "SQLiteEventStorageConfig",
        ),
    },
)
__getattr__ = lazy_getattr(__name__, _EXPORTS)

__all__ = [
    "AsyncSQLiteBackend",
    "AsyncSQLiteEventStorage",
    "AsyncSQLiteQueue",
    "AsyncSQLiteResultStorage",
    "SQLiteBackend",
    "SQLiteConfig",
    "SQLiteEventStorage",
    "SQLiteEventStorageConfig",
    "SQLiteQueue",
    "SQLiteResultStorage",
    "SQLiteResultStorageConfig",
    "SQLiteTaskQueueConfig",
]
