"""Kept so that ``from omniq.backend.redis import RedisBackend`` works: the bundle lives beside
its backend, in :mod:`omniq.storage.redis.backend`."""

from omniq.storage.redis.backend import AsyncRedisBackend, RedisBackend

__all__ = ["AsyncRedisBackend", "RedisBackend"]
