"""The memory backend bundle."""

from __future__ import annotations

from omniq._sync import SyncWrapper
from omniq.backend.base import AsyncBackend
from omniq.storage.memory.queue import AsyncMemoryQueue
from omniq.storage.memory.stores import AsyncMemoryEventStorage, AsyncMemoryResultStorage


class AsyncMemoryBackend(AsyncBackend):
    name = "memory"
    task_queue_class = AsyncMemoryQueue
    result_storage_class = AsyncMemoryResultStorage
    event_storage_class = AsyncMemoryEventStorage

    @classmethod
    def from_url(cls, url: str, /, **options: object) -> AsyncMemoryBackend:
        """``memory://`` (or ``memory://name``): a fresh in-process store."""
        name = url.partition("://")[2].strip("/") or None
        return cls(**({"name": name} if name else {}), **options)

    def result_options(self) -> dict[str, object]:
        return {k: v for k, v in super().result_options().items() if k != "max_finished"}

    def event_options(self) -> dict[str, object]:
        return {
            k: v
            for k, v in super().event_options().items()
            if k in ("project_name", "name", "max_events")
        }


class MemoryBackend(SyncWrapper, async_class=AsyncMemoryBackend):
    """Blocking API of :class:`AsyncMemoryBackend`."""


__all__ = ["AsyncMemoryBackend", "MemoryBackend"]
