"""Workers: one core (AsyncWorker) and executors that decide how a function runs."""

from __future__ import annotations

from omniq._sync import SyncWrapper
from omniq.exceptions import ConfigError
from omniq.workers.executors import EXECUTORS, AsyncExecutor, Executor
from omniq.workers.worker import AsyncWorker, WorkerStats

#: worker_type strings (ARCHITECTURE section 6) -> worker class; other types join here
WORKER_TYPES: dict[str, type[AsyncWorker]] = {"async": AsyncWorker}


def worker_class(worker_type: str) -> type[AsyncWorker]:
    try:
        return WORKER_TYPES[worker_type.lower()]
    except KeyError:
        raise ConfigError(
            f"unknown or unavailable worker_type {worker_type!r}: available are {sorted(WORKER_TYPES)}"
        ) from None


class Worker(SyncWrapper, async_class=AsyncWorker):
    """Blocking API of :class:`AsyncWorker`: ``start()`` returns at once, the worker serves on
    OmniQ's loop thread until ``stop()``."""


__all__ = [
    "EXECUTORS",
    "WORKER_TYPES",
    "AsyncExecutor",
    "AsyncWorker",
    "Executor",
    "Worker",
    "WorkerStats",
    "worker_class",
]
