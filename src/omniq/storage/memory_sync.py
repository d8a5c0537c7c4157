"""Sync twins of the memory backend (defined beside their async classes; kept for imports)."""

from omniq.storage.memory import MemoryEventStorage, MemoryQueue, MemoryResultStorage

__all__ = ["MemoryEventStorage", "MemoryQueue", "MemoryResultStorage"]
