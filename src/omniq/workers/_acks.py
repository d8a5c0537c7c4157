"""Acknowledging finished tasks: results stored and tasks marked SUCCESS in coalesced batches."""

from __future__ import annotations

import asyncio
import time

from omniq._aio import idle
from omniq.config import get_logger
from omniq.models.event import EventType
from omniq.storage._breaker import away, reported
from omniq.workers._state import WorkerState

log = get_logger("worker")


class Acknowledgements(WorkerState):
    """One flush at a time, batches that grow with load, retried until a stop at once gives up.

    While the result store (or the queue) is away, finished tasks stay in ``_completions``:
    their results and acknowledgements are written when it is back, and their leases are renewed
    by the heartbeat meanwhile, so nothing is lost and nothing runs twice. The buffer is bounded
    (``result_buffer``): when full, the worker claims nothing more (:meth:`_buffer_room`)
    rather than drop a result."""

    def _buffer_room(self) -> int:
        """How many more finished tasks the buffer takes; says once when it fills and once when
        it has room again."""
        room = self.result_buffer - len(self._completions) - len(self._held)
        if room <= 0 and not self._buffer_full:
            self._buffer_full = True
            log.warning(
                "worker %s: result buffer full (%d finished tasks wait for %s): not claiming "
                "until they are written",
                self.name,
                len(self._completions) + len(self._held),
                self.result_store.server_label(),
            )
        elif room > 0 and self._buffer_full:
            self._buffer_full = False
            log.info("worker %s: result buffer has room again; claiming", self.name)
        return room

    async def _flush_loop(self) -> None:
        assert self._flush_wake is not None
        while True:
            await self._flush_wake.wait()
            self._flush_wake.clear()
            await self._flush()

    async def _flush(self) -> None:
        """Stores results and acknowledges every finished task in one batch. Whatever finishes
        during the round trip goes in the next batch, so batches grow with load by themselves.
        One flush at a time: the flusher loop and ``stop`` both call this."""
        assert self._flush_lock is not None
        async with self._flush_lock:
            await self._flush_locked()

    async def _flush_locked(self) -> None:
        backoff = 0.05
        while self._completions:
            batch, self._completions = self._completions, []
            done, self._completed_tasks = self._completed_tasks, []
            left = None if self._flush_give_up is None else self._flush_give_up - time.monotonic()
            try:
                async with asyncio.timeout(None if left is None else max(left, 1.0)):
                    acks = await self.queue.complete_many(batch, result_storage=self.result_store)
            except asyncio.CancelledError:
                self._completions[:0] = batch
                self._completed_tasks[:0] = done
                raise
            except Exception as exc:
                breaker = away(self.queue, self.result_store)
                if not reported(self.queue, self.result_store):  # else said once already
                    log.warning(
                        "worker %s: acknowledging %d tasks failed (%s: %s); retrying",
                        self.name,
                        len(batch),
                        type(exc).__name__,
                        exc,
                    )
                if self._flush_give_up is not None and time.monotonic() >= self._flush_give_up:
                    # a stop must end: these tasks come back when their leases expire
                    log.warning(
                        "worker %s: stopping with %d finished task(s) not acknowledged, the "
                        "store being unreachable (%s: %s): their results are not kept; they stay "
                        "RUNNING in the store until their lease (%gs) expires, then run again",
                        self.name,
                        len(batch),
                        type(exc).__name__,
                        exc,
                        self.lease,
                    )
                    return
                self._completions[:0] = batch
                self._completed_tasks[:0] = done
                if breaker is not None:  # kept here until the store is back, then written
                    await breaker.wait_ready()
                    continue
                await idle(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if self._slot_free is not None and self._buffer_full:
                self._slot_free.set()  # the claim loop waits for room in the buffer
            for (task, duration), ack in zip(done, acks, strict=True):
                if ack:
                    self._emit(EventType.COMPLETED, task, duration=round(duration, 6))
                else:
                    self.stats.lost += 1
                    log.warning(
                        "task %s finished after its lease was lost; acknowledgement refused",
                        task.id,
                    )
