"""The buffered EventLogger (ARCHITECTURE section 8).

``emit`` only appends to a bounded buffer; a background flusher writes batches. A slow or failing
event store therefore never slows or fails a task: when the buffer is full, events are dropped,
counted and logged, and a failed batch is counted and dropped after one retry. While the event
store's circuit breaker is open (its server is away) a batch is dropped at once, without the
retry: events are dropped, not buffered, during an outage (counted in ``stats.dropped``, with
one warning line per 10 s), so an outage of the event store costs tasks nothing.

The flusher is event-driven, Nagle-style: it wakes on the first event, writes everything buffered,
and whatever arrives during that write goes out in the next batch. Idle costs nothing; under load
batches grow by themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from dataclasses import dataclass

from omniq.config import get_logger
from omniq.exceptions import CircuitOpen
from omniq.models.event import TaskEvent
from omniq.storage.base import BaseEventStorage

log = get_logger("events")


@dataclass
class EventLoggerStats:
    emitted: int = 0
    written: int = 0
    dropped: int = 0
    failed_batches: int = 0


class EventLogger:
    def __init__(
        self,
        storage: BaseEventStorage,
        *,
        max_buffer: int = 100_000,
        batch_size: int = 1_000,
    ) -> None:
        if max_buffer < 1 or batch_size < 1:
            raise ValueError(
                f"max_buffer and batch_size must be >= 1, got {max_buffer}, {batch_size}"
            )
        self.storage = storage
        self.max_buffer = max_buffer
        self.batch_size = batch_size
        self.stats = EventLoggerStats()
        self._buffer: deque[TaskEvent] = deque()
        self._wake: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None
        self._closed = False
        self._last_drop_log = 0.0
        self._last_fail_log = -math.inf

    def emit(self, event: TaskEvent) -> None:
        """Buffers an event; never blocks and never raises. Call from the event loop's thread."""
        if self._closed:
            return
        self.stats.emitted += 1
        if len(self._buffer) >= self.max_buffer:
            self.stats.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log > 10:
                self._last_drop_log = now
                log.warning(
                    "event buffer full (%d): dropping events; %d dropped so far",
                    self.max_buffer,
                    self.stats.dropped,
                )
            return
        self._buffer.append(event)
        if self._runner is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop yet: the next emit or flush() from async code writes it
            self._wake = asyncio.Event()
            self._runner = loop.create_task(self._run(), name="omniq-event-logger")
        assert self._wake is not None
        self._wake.set()

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._buffer:
                await self._write_batch()
            if self._closed:
                return

    async def _write_batch(self) -> None:
        n = min(len(self._buffer), self.batch_size)
        batch = [self._buffer.popleft() for _ in range(n)]
        for attempt in (1, 2):
            try:
                await self.storage.log_events(batch)
                self.stats.written += len(batch)
                return
            except Exception as exc:
                away = isinstance(exc, CircuitOpen)
                if attempt == 2 or away:
                    self.stats.failed_batches += 1
                    self.stats.dropped += len(batch)
                    now = time.monotonic()
                    if now - self._last_fail_log > 10:
                        self._last_fail_log = now
                        log.warning(
                            "event storage failed%s; dropped a batch of %d events (%d dropped "
                            "so far; tasks are not affected): %s: %s",
                            "" if away else " twice",
                            len(batch),
                            self.stats.dropped,
                            type(exc).__name__,
                            exc,
                        )
                    return
                await asyncio.sleep(0.05)

    async def flush(self) -> None:
        """Writes everything buffered now (used at shutdown and by tests)."""
        while self._buffer:
            await self._write_batch()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        runner, self._runner = self._runner, None
        if runner is not None and not runner.done():
            assert self._wake is not None
            self._wake.set()  # the runner drains the buffer, then returns
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        await self.flush()


__all__ = ["EventLogger", "EventLoggerStats"]
