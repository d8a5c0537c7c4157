"""The Redis backend's storage: task queue, result storage and event storage (seeds/001).

Every multi-step change is one Lua script (``lua/``), loaded once and run by SHA. All keys of a
project share one Cluster hash tag (the project name), so each script touches one slot; see
``queue``, ``results`` and ``events`` for the key layout of each component.
"""

from omniq.storage.redis.events import AsyncRedisEventStorage, RedisEventStorage
from omniq.storage.redis.queue import AsyncRedisQueue, RedisQueue
from omniq.storage.redis.results import AsyncRedisResultStorage, RedisResultStorage

__all__ = [
    "AsyncRedisEventStorage",
    "AsyncRedisQueue",
    "AsyncRedisResultStorage",
    "RedisEventStorage",
    "RedisQueue",
    "RedisResultStorage",
]
