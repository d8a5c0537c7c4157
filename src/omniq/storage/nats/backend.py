"""The NATS backend bundle: task queue, result storage and event storage on one NATS (cluster).

AsyncNATSBackend(NATSConfig(servers=["nats://localhost:4222"]))
AsyncNATSBackend(servers=["nats://a:4222", "nats://b:4222"], project_name="shop")
AsyncNATSBackend.from_url("nats://token@localhost:4222")
"""

from __future__ import annotations

from typing import Any

from omniq._sync import SyncWrapper
from omniq.backend.base import AsyncBackend
from omniq.storage.nats.events import AsyncNATSEventStorage
from omniq.storage.nats.queue import AsyncNATSQueue
from omniq.storage.nats.results import AsyncNATSResultStorage

_QUEUE_ONLY = ("queues", "lease_timeout", "max_finished")


class AsyncNATSBackend(AsyncBackend):
    """Every option of :class:`omniq.storage.nats.config.NATSConfig` (or a ``url``), plus
    ``project_name``, ``secret_key`` and the task queue's own options."""

    name = "nats"
    task_queue_class = AsyncNATSQueue
    result_storage_class = AsyncNATSResultStorage
    event_storage_class = AsyncNATSEventStorage

    def queue_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.options.items() if k != "results_max_age"}

    def result_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.options.items() if k not in _QUEUE_ONLY}

    def event_options(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in self.options.items()
            if k not in (*_QUEUE_ONLY, "secret_key", "allow_dill", "results_max_age")
        }


class NATSBackend(SyncWrapper, async_class=AsyncNATSBackend):
    """Blocking API of :class:`AsyncNATSBackend`."""


__all__ = ["AsyncNATSBackend", "NATSBackend"]
