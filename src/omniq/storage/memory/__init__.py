"""The in-process memory backend: a heap per queue, futures for wake-ups (ARCHITECTURE 12.4).

Fastest, for tests and single-process use; nothing survives the process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omniq.storage.registry import lazy_getattr, submodule_exports

if TYPE_CHECKING:
    from omniq.storage.memory.backend import AsyncMemoryBackend, MemoryBackend
    from omniq.storage.memory.config import (
        MemoryEventStorageConfig,
        MemoryResultStorageConfig,
        MemoryTaskQueueConfig,
    )
    from omniq.storage.memory.queue import AsyncMemoryQueue, MemoryQueue
    from omniq.storage.memory.stores import (
        AsyncMemoryEventStorage,
        AsyncMemoryResultStorage,
        MemoryEventStorage,
        MemoryResultStorage,
    )

_EXPORTS = submodule_exports(
    __name__,
    {
        "queue": ("AsyncMemoryQueue", "MemoryQueue"),
        "stores": (
            "AsyncMemoryResultStorage",
            "MemoryResultStorage",
            "AsyncMemoryEventStorage",
            "MemoryEventStorage",
        ),
        "backend": ("AsyncMemoryBackend", "MemoryBackend"),
        "config": (
            "MemoryTaskQueueConfig",
            "MemoryResultStorageConfig",
            "MemoryEventStorageConfig",
        ),
    },
)
__getattr__ = lazy_getattr(__name__, _EXPORTS)

__all__ = [
    "AsyncMemoryBackend",
    "AsyncMemoryEventStorage",
    "AsyncMemoryQueue",
    "AsyncMemoryResultStorage",
    "MemoryBackend",
    "MemoryEventStorage",
    "MemoryEventStorageConfig",
    "MemoryQueue",
    "MemoryResultStorage",
    "MemoryResultStorageConfig",
    "MemoryTaskQueueConfig",
]
