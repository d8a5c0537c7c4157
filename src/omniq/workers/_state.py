"""What the parts of a worker share: its counters, one running task's record, and the state
every part reads (``WorkerState``: the attributes ``AsyncWorker.__init__`` sets, declared once
so that each part, a class of one job, type-checks on its own).

The parts: ``worker.py`` (lifecycle, claiming, running), ``_outcomes.py`` (results, retries,
callbacks), ``_acks.py`` (acknowledging finished tasks in batches), ``_upkeep.py`` (heartbeats,
cancel signals, lease recovery, the registry record and the summary line).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from omniq.callbacks import CallbackManager
from omniq.events.logger import EventLogger
from omniq.models.event import EventType, TaskEvent
from omniq.models.task import Task
from omniq.registry import FunctionPolicy
from omniq.storage._breaker import CircuitBreaker
from omniq.storage.base import BaseEventStorage, BaseResultStorage, BaseTaskQueue, Completion
from omniq.workers._limits import LimitGate


@dataclass
class WorkerStats:
    processed: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    dead: int = 0
    cancelled: int = 0
    lost: int = 0
    callback_errors: int = 0
    started_at: float = field(default_factory=time.time)

    def as_dict(self, running: int) -> dict[str, Any]:
        return {
            "processed": self.processed,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "retried": self.retried,
            "dead": self.dead,
            "cancelled": self.cancelled,
            "lost": self.lost,
            "callback_errors": self.callback_errors,
            "running": running,
            "uptime": time.time() - self.started_at,
        }


class Running:
    __slots__ = ("runner", "started", "stop_reason", "task")

    def __init__(self, task: Task) -> None:
        self.task = task
        self.runner: asyncio.Task[None] | None = None
        self.started = False  # its runner took its first step
        self.stop_reason: str | None = None  # "cancel" | "lost" | "shutdown"


class WorkerState:
    """The state of a worker that its parts share (set by ``AsyncWorker.__init__``)."""

    worker_type: ClassVar[str]
    queue: BaseTaskQueue
    result_store: BaseResultStorage
    event_store: BaseEventStorage | None
    event_logger: EventLogger | None
    functions: FunctionPolicy
    worker_id: str
    name: str
    queues: list[str]
    concurrency: int
    lease: float
    heartbeat_interval: float
    recover_interval: float
    registry_ttl: float
    summary_interval: float | None
    stats: WorkerStats
    callbacks: CallbackManager | None
    _running: dict[str, Running]
    _callback_tasks: set[asyncio.Task[None]]
    _early_cancels: dict[str, None]
    _completions: list[Completion]
    _completed_tasks: list[tuple[Task, float]]
    _flush_wake: asyncio.Event | None
    _flush_lock: asyncio.Lock | None
    _flush_give_up: float | None
    _registry_ok: bool
    _upkeep_tick: float
    limits: LimitGate
    result_buffer: int
    _buffer_full: bool
    #: claims of tasks whose outcome waits for its store to come back (heartbeated)
    _held: dict[str, str]
    _stop: asyncio.Event | None
    _slot_free: asyncio.Event | None

    def breaker_state(self) -> dict[str, dict[str, Any]]:
        """The circuit breakers of this worker's stores (see ``Component.breaker_state``), by
        role: ``queue``, ``results`` and, with an event store, ``events``."""
        states = {
            "queue": self.queue.breaker_state(),
            "results": self.result_store.breaker_state(),
        }
        if self.event_store is not None:
            states["events"] = self.event_store.breaker_state()
        return states

    async def _wait_out(self, breaker: CircuitBreaker) -> None:
        """Waits, instead of a backoff, until ``breaker`` closes or lets a probe through (or the
        worker stops): a loop whose server is away neither spins nor logs, and resumes as soon
        as the server is back."""
        if self._stop is None:
            await breaker.wait_ready()
            return
        ready = asyncio.ensure_future(breaker.wait_ready())
        stop = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait((ready, stop), return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        stop.cancel()

    def _emit(self, event_type: EventType, task: Task, **details: Any) -> None:
        if self.event_logger is not None:
            self.event_logger.emit(
                TaskEvent.for_task(task, event_type, worker_id=self.worker_id, **details)
            )
