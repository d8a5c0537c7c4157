"""The Redis backend bundle: task queue, result storage and event storage on one Redis.

    AsyncRedisBackend(RedisConfig(host="localhost"))
    AsyncRedisBackend(host="localhost", port=6379, project_name="shop")
    AsyncRedisBackend.from_url("redis://:secret@localhost:6379/0")

Each component keeps its own connection pool on the same server; a completion writes the result
and the acknowledgement in one script because the queue and the result storage share the
project's hash slot (see ``omniq.storage.redis``).
"""

from __future__ import annotations

from typing import Any

from omniq._sync import SyncWrapper
from omniq.backend.base import AsyncBackend
from omniq.storage.redis.events import AsyncRedisEventStorage
from omniq.storage.redis.queue import AsyncRedisQueue
from omniq.storage.redis.results import AsyncRedisResultStorage

_QUEUE_ONLY = ("queues", "lease_timeout", "max_finished")


class AsyncRedisBackend(AsyncBackend):
    """Every option of :class:`omniq.models.config.RedisConfig` (or a ``url``), plus
    ``project_name``, ``secret_key`` and the task queue's own options."""

    name = "redis"
    task_queue_class = AsyncRedisQueue
    result_storage_class = AsyncRedisResultStorage
    event_storage_class = AsyncRedisEventStorage

    def result_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.options.items() if k not in _QUEUE_ONLY}

    def event_options(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in self.options.items()
            if k not in (*_QUEUE_ONLY, "secret_key", "allow_dill")
        }


class RedisBackend(SyncWrapper, async_class=AsyncRedisBackend):
    """Blocking API of :class:`AsyncRedisBackend`."""


__all__ = ["AsyncRedisBackend", "RedisBackend"]
