"""Writing running tasks' progress reports to the store, coalesced.

A task may report from any thread (a thread pool), a greenlet or the loop itself; a report only
replaces the task's pending value under a lock and, when no write is due yet, asks the loop (once)
for one. The writer then stores every pending value in one ``set_progress_many`` round trip, at
most one write per :data:`WRITE_INTERVAL` (the last value of each task winning), one write at a
time. Before a task's outcome is recorded, :meth:`ProgressWriter.flush` writes its last value
while the claim still holds, so a finished task shows its final progress. A worker whose tasks
never report never starts a write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time

from omniq.config import get_logger
from omniq.exceptions import BackendUnavailable, UnsupportedCapability
from omniq.models.progress import TaskProgress
from omniq.storage.base import BaseTaskQueue, Capability

log = get_logger("worker")

#: at most one progress write per this many seconds (all the tasks reporting share it)
WRITE_INTERVAL = 0.2


class ProgressWriter:
    """The progress outlet of one worker (see the module docstring)."""

    def __init__(self, queue: BaseTaskQueue, worker_name: str) -> None:
        self.queue = queue
        self.name = worker_name
        self.supported = queue.supports(Capability.PROGRESS)
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[str, TaskProgress]] = {}
        self._lost: set[str] = set()  # tasks whose claim the store refused: reports dropped
        self._armed = False  # a write is scheduled or running
        self._last_write = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writing: asyncio.Lock | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self.writes = 0

    def start(self) -> None:
        """Binds the writer to the running loop (the worker's); a worker started again starts
        afresh."""
        self._loop = asyncio.get_running_loop()
        self._writing = asyncio.Lock()
        with self._lock:
            self._pending.clear()
            self._lost.clear()
            self._armed = False

    # -- reports (any thread) -------------------------------------------------------------
    def put(self, task_id: str, claim: str, progress: TaskProgress) -> None:
        """Keeps ``progress`` as the task's pending value; a write is asked for if none is."""
        if not self.supported:
            raise UnsupportedCapability(
                f"the {self.queue.backend_name!r} backend does not offer the 'progress' "
                "capability: this task cannot report progress"
            )
        with self._lock:
            if task_id in self._lost:
                return
            self._pending[task_id] = (claim, progress)
            if self._armed:
                return
            self._armed = True
        loop = self._loop
        if loop is None:
            return  # the worker stopped: nothing writes any more
        with contextlib.suppress(RuntimeError):  # its loop closed under us: the same
            loop.call_soon_threadsafe(self._arm)

    # -- writes (the loop) ----------------------------------------------------------------
    def _arm(self) -> None:
        if self._loop is None:
            return  # stopped meanwhile
        delay = max(0.0, self._last_write + WRITE_INTERVAL - time.monotonic())
        self._timer = self._loop.call_later(delay, self._start_write)

    def _start_write(self) -> None:
        self._timer = None
        if self._loop is None:
            return
        self._task = self._loop.create_task(
            self._write_pending(), name=f"omniq-progress-{self.name}"
        )

    async def _write_pending(self) -> None:
        assert self._writing is not None
        try:
            async with self._writing:
                with self._lock:
                    batch, self._pending = self._pending, {}
                self._last_write = time.monotonic()
                await self._store(batch)
        finally:
            with self._lock:
                self._armed = bool(self._pending)
            if self._armed:
                self._arm()

    async def _store(
        self, batch: dict[str, tuple[str, TaskProgress]], *, keep: bool = True
    ) -> None:
        """Writes ``batch``; when the store fails, its reports (unless a newer one came, or
        ``keep`` is False) wait for the next write."""
        if not batch:
            return
        ids = list(batch)
        try:
            flags = await self.queue.set_progress_many([(i, *batch[i]) for i in ids])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # progress is a best-effort view, written again at the next write; a store that is
            # away is reported once by its circuit breaker, not once per write
            if keep:
                with self._lock:
                    for task_id in ids:
                        if task_id not in self._pending and task_id not in self._lost:
                            self._pending[task_id] = batch[task_id]
            level = logging.DEBUG if isinstance(exc, BackendUnavailable) else logging.WARNING
            log.log(
                level,
                "worker %s: writing the progress of %d tasks failed (%s: %s)",
                self.name,
                len(ids),
                type(exc).__name__,
                exc,
            )
            return
        self.writes += 1
        refused = [i for i, ok in zip(ids, flags, strict=True) if not ok]
        if refused:
            with self._lock:
                self._lost.update(refused)
                for task_id in refused:
                    self._pending.pop(task_id, None)
            log.warning(
                "worker %s: progress of %s refused: the claim is no longer this worker's",
                self.name,
                ", ".join(refused),
            )

    async def flush(self, task_id: str) -> None:
        """Writes ``task_id``'s pending report now (its run ended; its outcome comes next) and
        forgets the task."""
        if self._writing is None:
            return
        async with self._writing:
            with self._lock:
                item = self._pending.pop(task_id, None)
                self._lost.discard(task_id)
            if item is not None:
                await self._store({task_id: item}, keep=False)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._loop = None


__all__ = ["WRITE_INTERVAL", "ProgressWriter"]
