"""Storage: the three interfaces and one module per backend.

Backend classes are imported lazily (``from omniq.storage import SQLiteResultStorage`` loads only
the SQLite module), so an optional driver that is not installed never breaks ``import omniq``.
"""

from __future__ import annotations

import importlib
from typing import Any

from omniq.storage.base import (
    BaseEventStorage,
    BaseResultStorage,
    BaseTaskQueue,
    Completion,
    EventQuery,
    HeartbeatStatus,
)

# public name -> module that defines it; a new backend adds its names here
_LAZY: dict[str, str] = {
    "AsyncMemoryQueue": "omniq.storage.memory",
    "MemoryQueue": "omniq.storage.memory",
    "AsyncMemoryResultStorage": "omniq.storage.memory",
    "MemoryResultStorage": "omniq.storage.memory",
    "AsyncMemoryEventStorage": "omniq.storage.memory",
    "MemoryEventStorage": "omniq.storage.memory",
    "AsyncRedisQueue": "omniq.storage.redis",
    "RedisQueue": "omniq.storage.redis",
    "AsyncRedisResultStorage": "omniq.storage.redis",
    "RedisResultStorage": "omniq.storage.redis",
    "AsyncRedisEventStorage": "omniq.storage.redis",
    "RedisEventStorage": "omniq.storage.redis",
    "AsyncSQLiteQueue": "omniq.storage.sqlite",
    "SQLiteQueue": "omniq.storage.sqlite",
    "AsyncSQLiteResultStorage": "omniq.storage.sqlite",
    "SQLiteResultStorage": "omniq.storage.sqlite",
    "AsyncSQLiteEventStorage": "omniq.storage.sqlite",
    "SQLiteEventStorage": "omniq.storage.sqlite",
    "AsyncPostgresQueue": "omniq.storage.postgres",
    "PostgresQueue": "omniq.storage.postgres",
    "AsyncPostgresResultStorage": "omniq.storage.postgres",
    "PostgresResultStorage": "omniq.storage.postgres",
    "AsyncPostgresEventStorage": "omniq.storage.postgres",
    "PostgresEventStorage": "omniq.storage.postgres",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'omniq.storage' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "BaseEventStorage",
    "BaseResultStorage",
    "BaseTaskQueue",
    "Completion",
    "EventQuery",
    "HeartbeatStatus",
    *_LAZY,
]
