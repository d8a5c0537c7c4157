"""Workers: one core (AsyncWorker) and executors that decide how a function runs.

Every worker class is usable from async code (``await worker.start()``, ``async with``) and, as
the seeds do, from plain sync code (``worker.start()``, ``with ThreadPoolWorker(...) as worker``):
then it serves on OmniQ's own loop thread.
"""

from __future__ import annotations

from omniq._sync import SyncWrapper
from omniq.exceptions import ConfigError
from omniq.workers.executors import EXECUTORS, AsyncExecutor, Executor, ThreadExecutor
from omniq.workers.gevent import GeventExecutor
from omniq.workers.pool import AsyncWorkerPool, WorkerPool
from omniq.workers.process import ChildProcessDied, ProcessExecutor
from omniq.workers.worker import AsyncWorker, WorkerStats


class ThreadPoolWorker(AsyncWorker):
    """Every task in a bounded thread pool (async functions on a loop per thread): for blocking,
    I/O-bound code. A sync task past its timeout is reported and its thread abandoned."""

    worker_type = "thread"
    executor_class = ThreadExecutor
    concurrency_setting = "THREAD_WORKERS"


class ProcessPoolWorker(AsyncWorker):
    """Every task in a child process: for CPU-bound code. A task past its timeout is killed and its
    child replaced; a child that dies fails only its own task (retried or DEAD per its policy)."""

    worker_type = "process"
    executor_class = ProcessExecutor
    concurrency_setting = "PROCESS_WORKERS"


class GeventPoolWorker(AsyncWorker):
    """Sync tasks as greenlets in a gevent pool, in a monkey-patched process (``omniq worker
    --type gevent``); async tasks on the loop. For thousands of concurrent blocking-I/O tasks."""

    worker_type = "gevent"
    executor_class = GeventExecutor
    concurrency_setting = "GEVENT_WORKERS"


ThreadWorker = ThreadPoolWorker
ProcessWorker = ProcessPoolWorker
GeventWorker = GeventPoolWorker

#: worker_type strings (ARCHITECTURE section 6) -> worker class; other types join here
WORKER_TYPES: dict[str, type[AsyncWorker]] = {
    "async": AsyncWorker,
    "thread": ThreadPoolWorker,
    "thread_pool": ThreadPoolWorker,
    "process": ProcessPoolWorker,
    "process_pool": ProcessPoolWorker,
    "gevent": GeventPoolWorker,
    "gevent_pool": GeventPoolWorker,
}


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
    "AsyncWorkerPool",
    "ChildProcessDied",
    "Executor",
    "GeventExecutor",
    "GeventPoolWorker",
    "GeventWorker",
    "ProcessExecutor",
    "ProcessPoolWorker",
    "ProcessWorker",
    "ThreadExecutor",
    "ThreadPoolWorker",
    "ThreadWorker",
    "Worker",
    "WorkerPool",
    "WorkerStats",
    "worker_class",
]
