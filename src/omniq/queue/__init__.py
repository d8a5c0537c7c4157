"""Task-queue level: builder, retry policy, and the ``XTaskQueue`` names of every backend
(``MemoryTaskQueue``, ``SQLiteTaskQueue``, ...), imported on demand."""

from __future__ import annotations

import importlib
from typing import Any

from omniq.queue.builder import build_task, validate_queue_name
from omniq.queue.retry import backoff_delay

# public name -> (module, attribute); a new backend adds its two names here
_LAZY: dict[str, tuple[str, str]] = {
    "AsyncMemoryTaskQueue": ("omniq.storage.memory", "AsyncMemoryQueue"),
    "MemoryTaskQueue": ("omniq.storage.memory", "MemoryQueue"),
    "AsyncRedisTaskQueue": ("omniq.storage.redis", "AsyncRedisQueue"),
    "RedisTaskQueue": ("omniq.storage.redis", "RedisQueue"),
    "AsyncSQLiteTaskQueue": ("omniq.storage.sqlite", "AsyncSQLiteQueue"),
    "SQLiteTaskQueue": ("omniq.storage.sqlite", "SQLiteQueue"),
    "AsyncPostgresTaskQueue": ("omniq.storage.postgres", "AsyncPostgresQueue"),
    "PostgresTaskQueue": ("omniq.storage.postgres", "PostgresQueue"),
    "AsyncTaskQueue": ("omniq.core", "AsyncTaskQueue"),
    "TaskQueue": ("omniq.core", "TaskQueue"),
}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'omniq.queue' has no attribute {name!r}")
    return getattr(importlib.import_module(target[0]), target[1])


__all__ = ["backoff_delay", "build_task", "validate_queue_name", *_LAZY]
