"""The Redis backend's storage: task queue, result storage and event storage (seeds/001).

Every multi-step change is one Lua script (``lua/``), loaded once and run by SHA. All keys of a
project share one Cluster hash tag (the project name), so each script touches one slot; see
``queue``, ``results`` and ``events`` for the key layout of each component. Names are imported
on first use, so that ``config`` reads without the driver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omniq.storage.registry import lazy_getattr, submodule_exports

if TYPE_CHECKING:
    from omniq.storage.redis.backend import AsyncRedisBackend, RedisBackend
    from omniq.storage.redis.config import RedisConfig
    from omniq.storage.redis.events import AsyncRedisEventStorage, RedisEventStorage
    from omniq.storage.redis.queue import AsyncRedisQueue, RedisQueue
    from omniq.storage.redis.results import AsyncRedisResultStorage, RedisResultStorage

_EXPORTS = submodule_exports(
    __name__,
    {
        "queue": ("AsyncRedisQueue", "RedisQueue"),
        "results": ("AsyncRedisResultStorage", "RedisResultStorage"),
        "events": ("AsyncRedisEventStorage", "RedisEventStorage"),
        "backend": ("AsyncRedisBackend", "RedisBackend"),
        "config": ("RedisConfig",),
    },
)
__getattr__ = lazy_getattr(__name__, _EXPORTS)

__all__ = [
    "AsyncRedisBackend",
    "AsyncRedisEventStorage",
    "AsyncRedisQueue",
    "AsyncRedisResultStorage",
    "RedisBackend",
    "RedisConfig",
    "RedisEventStorage",
    "RedisQueue",
    "RedisResultStorage",
]
