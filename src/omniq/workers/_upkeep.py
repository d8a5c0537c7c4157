"""A worker's upkeep beside its tasks: lease heartbeats, cancel signals, lease recovery and TTL
sweeps, its registry record, and the periodic summary line."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import time
from datetime import UTC, datetime

from omniq._aio import idle
from omniq.config import get_logger
from omniq.models.worker import WorkerInfo
from omniq.storage._breaker import reported
from omniq.storage.base import Capability, HeartbeatStatus
from omniq.workers import _report
from omniq.workers._state import WorkerState

log = get_logger("worker")


class Upkeep(WorkerState):
    """The background loops that keep leases, signals and the registry up to date."""

    async def _heartbeat_loop(self) -> None:
        while True:
            await idle(self.heartbeat_interval)
            claims = [(r.task.id, r.task.claim or "") for r in self._running.values()]
            claims += [(c.task_id, c.claim) for c in self._completions]
            claims += list(self._held.items())
            if not claims:
                continue
            try:
                states = await self.queue.heartbeat_many(claims, lease=self.lease)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # an open breaker logged the outage; leases outlast a short one, and the
                # heartbeat of the next interval renews them once the server is back
                log.log(
                    logging.DEBUG if reported(self.queue) else logging.WARNING,
                    "worker %s: heartbeat failed (%s: %s)",
                    self.name,
                    type(exc).__name__,
                    exc,
                )
                continue
            for task_id, state in states.items():
                if state is not HeartbeatStatus.OK:
                    self._stop_running(
                        task_id, "lost" if state is HeartbeatStatus.LOST else "cancel"
                    )
            if self.limits.held:
                try:
                    await self.limits.renew(self.lease)
                except Exception as exc:
                    log.warning(
                        "worker %s: renewing concurrency slots failed (%s: %s)",
                        self.name,
                        type(exc).__name__,
                        exc,
                    )

    def _stop_running(self, task_id: str, reason: str) -> None:
        """Stops a task this worker runs; its runner records the first reason given. A runner
        that has not taken its first step is not cancelled (a coroutine cancelled before it
        starts never reaches the code that records the stop): it finds the reason when it
        starts."""
        running = self._running.get(task_id)
        if running is None or running.runner is None or running.runner.done():
            if reason == "cancel" and running is None:
                # perhaps claimed here but not yet registered: remembered for a while
                self._early_cancels[task_id] = None
                while len(self._early_cancels) > 1024:
                    del self._early_cancels[next(iter(self._early_cancels))]
            return
        if running.stop_reason is None:
            running.stop_reason = reason
            if running.started:
                running.runner.cancel()

    async def _cancel_loop(self) -> None:
        """Stops a running task as soon as its cancellation is signalled through the store
        (SupportsCancelSignal) instead of at the next heartbeat, which still catches whatever a
        lost signal missed."""
        while True:
            try:
                async for task_id in self.queue.cancel_signals():
                    self._stop_running(task_id, "cancel")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.log(
                    logging.DEBUG if self.queue._is_outage(exc) else logging.WARNING,
                    "worker %s: cancel signals failed (%s: %s); listening again",
                    self.name,
                    type(exc).__name__,
                    exc,
                )
                await idle(1.0)

    async def _summary_loop(self) -> None:
        assert self.summary_interval
        summary = _report.Summary(self.name)
        while True:
            await idle(self.summary_interval)
            try:
                depths: dict[str, int] | None = {
                    q: await self.queue.get_queue_size(q) for q in self.queues
                }
            except asyncio.CancelledError:
                raise
            except Exception:  # a store that cannot count: the line goes without the depths
                depths = None
            line = summary.line(self.stats.processed, self.stats.failed, len(self._running), depths)
            if line is not None:
                log.info("%s", line)

    async def _upkeep_loop(self) -> None:
        """Recovers expired leases (at once on start, then every ``recover_interval``: a worker
        that is restarted often must still recover what its killed predecessors held), sweeps
        TTLs and spent limit records, and renews this worker's registry record every few
        seconds. A failure is logged and the loop carries on."""
        last_recover = last_cleanup = -math.inf
        first = True
        while True:
            now = time.monotonic()
            try:
                if now - last_recover >= self.recover_interval:
                    last_recover = now
                    await self.queue.recover_expired()
                if now - last_cleanup > 60:
                    last_cleanup = now
                    await self.queue.cleanup()
                    await self.result_store.cleanup()
                    # dependents whose settling was cut short by a crash (rare: see base)
                    await self.queue.settle_waiting()
                    # buckets full again, keys without a live slot: one record per user
                    # would otherwise stay for good
                    await self.queue.sweep_limits()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.log(
                    logging.DEBUG if reported(self.queue, self.result_store) else logging.WARNING,
                    "worker %s: upkeep failed (%s: %s)",
                    self.name,
                    type(exc).__name__,
                    exc,
                )
            if not first:  # start() has just published the record
                await self._register()
            first = False
            await idle(self._upkeep_tick)

    # -- registry ------------------------------------------------------------------------
    def info(self, state: str = "running") -> WorkerInfo:
        """This worker's record for the registry that ``omniq info`` reads."""
        s = self.stats
        return WorkerInfo(
            worker_id=self.worker_id,
            worker_type=self.worker_type,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            queues=list(self.queues),
            concurrency=self.concurrency,
            started_at=datetime.fromtimestamp(s.started_at, UTC),
            state=state,
            processed=s.processed,
            succeeded=s.succeeded,
            failed=s.failed,
            retried=s.retried,
            dead=s.dead,
            cancelled=s.cancelled,
            lost=s.lost,
            running=len(self._running),
            callback_errors=s.callback_errors,
            breakers={role: b["state"] for role, b in self.breaker_state().items()},
            buffered=len(self._completions),
        )

    async def _register(self, state: str = "running") -> None:
        """Publishes this worker's record. Best effort: a store without a registry, or one that
        is down for a moment, must never stop the worker from serving."""
        if not self.queue.supports(Capability.WORKERS):
            return
        try:
            await self.queue.register_worker(self.info(state), self.registry_ttl)
            self._registry_ok = True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._registry_ok and not reported(self.queue):
                log.warning(
                    "worker %s: could not publish its state (%s: %s)",
                    self.name,
                    type(exc).__name__,
                    exc,
                )
            self._registry_ok = False

    async def _unregister(self) -> None:
        if not self.queue.supports(Capability.WORKERS):
            return
        try:
            await self.queue.unregister_worker(self.worker_id)
        except asyncio.CancelledError:
            raise
        except Exception:  # a record left behind expires by itself
            log.debug("worker %s: could not remove its registry record", self.name)
