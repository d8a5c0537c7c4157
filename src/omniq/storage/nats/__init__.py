"""The NATS JetStream backend's storage: task queue, result storage and event storage (seeds
003/004). Tasks on a work-queue stream with one subject per named queue and a durable pull
consumer shared by all workers; task records, schedules and workers in a KV bucket; results in a
KV bucket with a TTL; events on a stream. See ``queue`` for the design and ``_conn`` for the
server features it needs. Names are imported on first use, so that ``config`` reads without the
driver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omniq.storage.registry import lazy_getattr, submodule_exports

if TYPE_CHECKING:
    from omniq.storage.nats.backend import AsyncNATSBackend, NATSBackend
    from omniq.storage.nats.config import NATSConfig
    from omniq.storage.nats.events import AsyncNATSEventStorage, NATSEventStorage
    from omniq.storage.nats.queue import AsyncNATSQueue, NATSQueue
    from omniq.storage.nats.results import AsyncNATSResultStorage, NATSResultStorage

_EXPORTS = submodule_exports(
    __name__,
    {
        "queue": ("AsyncNATSQueue", "NATSQueue"),
        "results": ("AsyncNATSResultStorage", "NATSResultStorage"),
        "events": ("AsyncNATSEventStorage", "NATSEventStorage"),
        "backend": ("AsyncNATSBackend", "NATSBackend"),
        "config": ("NATSConfig",),
    },
)
__getattr__ = lazy_getattr(__name__, _EXPORTS)

__all__ = [
    "AsyncNATSBackend",
    "AsyncNATSEventStorage",
    "AsyncNATSQueue",
    "AsyncNATSResultStorage",
    "NATSBackend",
    "NATSConfig",
    "NATSEventStorage",
    "NATSQueue",
    "NATSResultStorage",
]
