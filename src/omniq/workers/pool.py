"""Several workers in one process, started and stopped together (for example a process pool for
CPU-bound queues beside an async worker for I/O-bound ones, on one task queue)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Self

from omniq._sync import SyncWrapper, blocking_outside_loop
from omniq.workers.worker import AsyncWorker


class AsyncWorkerPool:
    def __init__(self, workers: Iterable[AsyncWorker] = ()) -> None:
        self.workers: list[AsyncWorker] = list(workers)

    def add(self, worker: AsyncWorker) -> AsyncWorker:
        self.workers.append(worker)
        return worker

    @blocking_outside_loop
    async def start(self) -> None:
        """Starts the workers in order; if one cannot start, those already started are stopped
        again (handing back anything they claimed) before the error is raised, so a failed
        start leaves nothing serving behind the caller's back."""
        started: list[AsyncWorker] = []
        try:
            for worker in self.workers:
                await worker.start()
                started.append(worker)
        except BaseException:
            await asyncio.gather(*(w.stop(graceful=False) for w in started), return_exceptions=True)
            raise

    @blocking_outside_loop
    async def stop(self, graceful: bool = True, timeout: float | None = None) -> None:
        """Stops every worker at once, so their grace periods overlap instead of adding up."""
        await asyncio.gather(*(w.stop(graceful=graceful, timeout=timeout) for w in self.workers))

    def get_stats(self) -> list[dict[str, Any]]:
        return [w.get_stats() for w in self.workers]

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class WorkerPool(SyncWrapper, async_class=AsyncWorkerPool):
    """Blocking API of :class:`AsyncWorkerPool`."""


__all__ = ["AsyncWorkerPool", "WorkerPool"]
