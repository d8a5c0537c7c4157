"""Sync twins of the memory backend, made by the one wrapper mechanism."""

from omniq._sync import SyncWrapper
from omniq.storage.memory import AsyncMemoryEventStorage, AsyncMemoryQueue, AsyncMemoryResultStorage


class MemoryQueue(SyncWrapper, async_class=AsyncMemoryQueue):
    """Blocking API of :class:`AsyncMemoryQueue`."""


class MemoryResultStorage(SyncWrapper, async_class=AsyncMemoryResultStorage):
    """Blocking API of :class:`AsyncMemoryResultStorage`."""


class MemoryEventStorage(SyncWrapper, async_class=AsyncMemoryEventStorage):
    """Blocking API of :class:`AsyncMemoryEventStorage`."""


__all__ = ["MemoryEventStorage", "MemoryQueue", "MemoryResultStorage"]
