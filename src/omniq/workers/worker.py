"""The one worker core (ARCHITECTURE sections 3, 6 and 11b).

``AsyncWorker`` claims tasks in batches up to its free capacity, runs each through an executor,
renews leases with one batched heartbeat, stores results and acknowledges them in coalesced
batches, retries with backoff, and hands running tasks back on shutdown. Executors decide only
*how* a function runs; every other worker type is this class with another executor.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import msgspec

from omniq import _exit
from omniq._aio import cancel_and_wait, idle, raise_if_cancelled
from omniq._sync import blocking_outside_loop, run_sync, unwrap
from omniq.callbacks import CallbackManager, TaskOutcome, run_wrapped, run_wrappers
from omniq.config import get_logger, get_settings
from omniq.events.logger import EventLogger
from omniq.exceptions import (
    SerializationError,
)
from omniq.models.event import EventType
from omniq.models.result import ResultStatus, TaskResult, result_value
from omniq.models.task import PassResults, Task
from omniq.progress import enter
from omniq.queue.scheduler import AsyncScheduler
from omniq.registry import registry, worker_policy
from omniq.serialization.msgspec import is_lossless
from omniq.storage._breaker import away, connect_event_store, reported
from omniq.storage.base import (
    BaseEventStorage,
    BaseResultStorage,
    BaseTaskQueue,
    Capability,
    Completion,
)
from omniq.workers import _report
from omniq.workers._acks import Acknowledgements
from omniq.workers._limits import LimitGate, queue_rate_limits
from omniq.workers._outcomes import Outcomes
from omniq.workers._progress import ProgressWriter
from omniq.workers._state import Running, WorkerStats
from omniq.workers._upkeep import Upkeep
from omniq.workers.executors import AsyncExecutor, Executor
from omniq.workers.settings import WorkerSettings

log = get_logger("worker")

#: How long a stop at once (a second signal) keeps trying to acknowledge finished tasks on an
#: unreachable backend before leaving them to their leases (they run again elsewhere). A graceful
#: stop keeps trying for its grace period, and at least this long.
_FORCED_FLUSH = 5.0


def _default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class AsyncWorker(Outcomes, Acknowledgements, Upkeep):
    """Runs tasks from ``queue`` until stopped.

    ``concurrency`` (alias ``max_workers``) bounds the tasks running at once; the worker claims up
    to its free capacity in one ``dequeue_many`` round trip. ``queues`` are served in the order
    given. Results go to ``result_store`` (by default the queue's own kind of result storage).
    """

    worker_type = "async"
    executor_class: type[Executor] = AsyncExecutor
    #: the setting that gives the default concurrency of this worker type
    concurrency_setting = "MAX_WORKERS"

    def __init__(
        self,
        queue: BaseTaskQueue,
        result_store: BaseResultStorage | None = None,
        event_store: BaseEventStorage | None = None,
        *,
        settings: WorkerSettings | None = None,
        executor: Executor | None = None,
        event_logger: EventLogger | None = None,
        callbacks: CallbackManager | None = None,
        **options: Any,
    ) -> None:
        """``options`` are :class:`WorkerSettings`' fields as keywords (``queues``,
        ``concurrency`` or ``max_workers``, ``lease``, ...), laid over ``settings``. The
        components are wired here: see :meth:`start`."""
        s = WorkerSettings.from_keywords(options, base=settings, caller=type(self).__name__)
        self.settings = s
        self.queue: BaseTaskQueue = unwrap(queue)
        #: which task functions this worker runs (omniq.registry): registered ones, those its
        #: application enqueued through this queue object, those of ``task_modules`` (and
        #: TASK_MODULES), or any when ``allow_any_function`` (anyone who can write to the broker
        #: then runs any code here)
        self.functions = worker_policy(
            s.task_modules, s.allow_any_function, self.queue.enqueued_functions
        )
        if result_store is None:
            result_store = self.queue.result_storage or self.queue_default_result_storage()
        self.result_store: BaseResultStorage = unwrap(result_store)
        self.event_store: BaseEventStorage | None = unwrap(event_store)
        #: a logger given (the façade's, shared) is its giver's to close; one made here is ours
        self._owns_event_logger = event_logger is None and self.event_store is not None
        if event_logger is None and self.event_store is not None:
            event_logger = EventLogger(self.event_store)
        self.event_logger = event_logger
        self.queues = self.queue._resolve_queues(s.queues)
        size = s.concurrency or int(getattr(get_settings(), self.concurrency_setting))
        if size < 1:
            raise ValueError(f"concurrency must be >= 1, got {size!r}")
        self.concurrency = size
        self.executor = executor or self.executor_class(size)
        self._set_timings(s)
        self.worker_id = s.worker_id or _default_worker_id()
        self.name = s.name or self.worker_id
        self.stats = WorkerStats()
        #: lifecycle hooks of this worker, on top of the process-wide ``default_hooks``
        self.callbacks = callbacks
        #: seconds between the INFO summary lines (processed, failed, rate, waiting); 0 or None: off
        self.summary_interval = s.summary_interval
        self._registry_ok = True
        self.result_buffer = s.result_buffer or get_settings().RESULT_BUFFER
        if self.result_buffer < 1:
            raise ValueError(f"result_buffer must be >= 1, got {s.result_buffer!r}")
        self._buffer_full = False
        self._held: dict[str, str] = {}
        #: each worker runs a scheduler loop by default; occurrences are enqueued exactly once
        #: however many run (see omniq.queue.scheduler)
        self.scheduler = AsyncScheduler(self.queue) if s.scheduler else None
        #: rate and key concurrency limits: asked of the store only for tasks that carry one
        self.limits = LimitGate(
            self.queue, queue_rate_limits(s.rate_limits), max_waiting=max(1, size // 2)
        )
        self._running: dict[str, Running] = {}
        #: where the running tasks' progress reports go (omniq.current_task().set_progress)
        self._progress = ProgressWriter(self.queue, self.name)
        self._callback_tasks: set[asyncio.Task[None]] = set()
        #: cancel signals for tasks not running here (yet): checked as claims come back
        self._early_cancels: dict[str, None] = {}
        self._completions: list[Completion] = []
        self._completed_tasks: list[tuple[Task, float]] = []
        self._flush_wake: asyncio.Event | None = None
        self._flush_lock: asyncio.Lock | None = None
        #: set by a stop at once: acknowledgements are not retried past this (monotonic) time
        self._flush_give_up: float | None = None
        self._slot_free: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._main: asyncio.Task[None] | None = None
        self._started = False

    def _set_timings(self, s: WorkerSettings) -> None:
        """The lease and the intervals that follow from it, each a setting left unset taking
        its share of the lease (the queue's lease when the worker names none)."""
        self.lease = float(s.lease or self.queue.lease_timeout)
        self.heartbeat_interval = float(s.heartbeat_interval or self.lease / 3)
        self.recover_interval = float(s.recover_interval or max(1.0, self.lease / 2))
        self.idle_timeout = s.idle_timeout
        self.shutdown_timeout = s.shutdown_timeout
        #: how long the worker's registry record outlives its last renewal (it is renewed every
        #: few seconds), so ``omniq info`` drops a killed worker soon after
        self._upkeep_tick = min(self.recover_interval, 5.0)
        self.registry_ttl = float(s.registry_ttl or max(15.0, self._upkeep_tick * 3))

    @classmethod
    def keyword_names(cls) -> list[str]:
        """The keywords the constructor takes (a YAML ``worker.config`` is checked against them)."""
        return [
            "settings",
            "executor",
            "event_logger",
            "callbacks",
            *WorkerSettings.__struct_fields__,
            "max_workers",
        ]

    def queue_default_result_storage(self) -> BaseResultStorage:
        return self.queue.create_result_storage()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} queues={self.queues} concurrency={self.concurrency}>"

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        return self._started and self._stop is not None and not self._stop.is_set()

    @blocking_outside_loop
    async def start(self) -> None:
        """Starts the worker in the background of the running loop and returns at once."""
        if self._started:
            return
        await self.queue.connect()
        await self.result_store.connect()
        if self.event_store is not None:
            await connect_event_store(self.event_store)
        # a worker started on its own wires the queue; one started by a façade shares the
        # façade's queue, already wired, and keeps that wiring
        self.queue.wire(
            result_storage=self.result_store, event_logger=self.event_logger, keep_existing=True
        )
        await self.executor.start()
        self._progress.start()
        self._stop = asyncio.Event()
        self._flush_wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._slot_free = asyncio.Event()
        self.stats = WorkerStats()
        self._started = True
        self._tasks = [
            asyncio.create_task(self._flush_loop(), name=f"omniq-flush-{self.name}"),
            asyncio.create_task(self._heartbeat_loop(), name=f"omniq-heartbeat-{self.name}"),
            asyncio.create_task(self._upkeep_loop(), name=f"omniq-upkeep-{self.name}"),
        ]
        if self.queue.supports(Capability.CANCEL_SIGNAL):
            self._tasks.append(
                asyncio.create_task(self._cancel_loop(), name=f"omniq-cancels-{self.name}")
            )
        if self.summary_interval:
            self._tasks.append(
                asyncio.create_task(self._summary_loop(), name=f"omniq-summary-{self.name}")
            )
        self._main = asyncio.create_task(self._claim_loop(), name=f"omniq-claim-{self.name}")
        if self.scheduler is not None:
            self.scheduler.start()
        _exit.opened(self, f"worker {self.name}", self._stop_at_exit, order=_exit.WORKER)
        await self._register()
        # DEBUG: whoever starts a worker knows it did (``omniq worker`` prints a banner instead)
        log.debug(
            "worker %s started on queues %s (concurrency %d)",
            self.name,
            self.queues,
            self.concurrency,
        )

    async def run(self) -> None:
        """Starts and serves until :meth:`stop` is called (or the task running this is cancelled)."""
        await self.start()
        assert self._stop is not None
        try:
            await self._stop.wait()
        finally:
            await self.stop()

    @blocking_outside_loop
    async def stop(self, graceful: bool = True, timeout: float | None = None) -> None:
        """Stops claiming, lets running tasks finish within ``timeout`` (default
        ``shutdown_timeout``; 0 or ``graceful=False``: at once), hands the rest back to the queue
        so another worker takes them immediately, and flushes results and events."""
        if not self._started:
            return
        _exit.closed(self)
        assert self._stop is not None
        self._stop.set()
        if self.scheduler is not None:
            await self.scheduler.stop()
        main = self._main
        if main is not None:
            # wait() lets a cancellation of this stop through (a second signal cancels the
            # graceful stop): awaiting the task under suppress(CancelledError) swallowed it, and
            # the stop went on waiting for acknowledgements that could not be sent
            await asyncio.wait([main])
            self._main = None
            if not main.cancelled():
                main.result()
        grace = 0.0 if not graceful else (self.shutdown_timeout if timeout is None else timeout)
        if self._flush_give_up is None:
            # finished tasks wait for a store that is away, but a stop must end: the ones
            # still unacknowledged then are left to their leases (see _flush_locked)
            self._flush_give_up = time.monotonic() + max(grace, _FORCED_FLUSH)
        elif not graceful:  # a second signal during a graceful stop: 5 s from now at most
            self._flush_give_up = min(self._flush_give_up, time.monotonic() + _FORCED_FLUSH)
        runners = [r.runner for r in self._running.values() if r.runner is not None]
        if runners and grace > 0:
            await asyncio.wait(runners, timeout=grace)
        for running in list(self._running.values()):
            self._stop_running(running.task.id, "shutdown")
        runners = [r.runner for r in self._running.values() if r.runner is not None]
        if runners:
            await asyncio.wait(runners)
        assert self._flush_lock is not None
        await self._flush()
        # with the lock held no flush is in flight, so cancelling the flusher cannot interrupt an
        # acknowledgement the store already committed (and send it twice)
        async with self._flush_lock:
            await cancel_and_wait(*self._tasks)
        self._tasks = []
        await self._flush()  # anything finished while the background loops wound down
        if self._callback_tasks:  # notifications already under way get the grace period too
            await asyncio.wait(list(self._callback_tasks), timeout=max(grace, 1.0))
        # every runner is done by now (finished or handed back): whatever still runs in a pool is
        # abandoned work, so do not wait for it (a thread cannot be stopped, only left behind)
        await self.executor.shutdown(wait=False)
        await self._unregister()
        if self.event_logger is not None and self._owns_event_logger:
            self.queue.unwire(self.event_logger)  # closed: the queue must not emit into it
            await self.event_logger.close()
        self._progress.stop()
        self._started = False
        self._flush_give_up = None
        log.debug("worker %s stopped: %s", self.name, self.stats.as_dict(0))

    async def _stop_at_exit(self) -> None:
        # the program is ending: running tasks go back to the queue at once, for the next worker
        await self.stop(graceful=False)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    def __enter__(self) -> Self:
        """``with ThreadPoolWorker(...) as worker:`` from sync code (seeds/003): serves on
        OmniQ's loop thread until the block ends."""
        run_sync(self.start)
        return self

    def __exit__(self, *exc: object) -> None:
        run_sync(self.stop)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @blocking_outside_loop
    async def get_result(self, task_id: str, timeout: float | None = None) -> Any:
        """The value a task returned (waits up to ``timeout``); see ``AsyncOmniQ.get_result``."""
        return result_value(task_id, await self.result_store.wait(task_id, timeout))

    def get_stats(self) -> dict[str, Any]:
        return {
            "worker_id": self.worker_id,
            "type": self.worker_type,
            "queues": self.queues,
            "concurrency": self.concurrency,
            **self.stats.as_dict(len(self._running)),
        }

    # -- dependencies ----------------------------------------------------------------------
    async def _with_dependency_results(self, task: Task) -> Task:
        """A chain step or chord callback gets its dependencies' results as first argument:
        the one result (ONE) or the list of them in ``depends_on`` order (ALL). A dependency
        without a successful result (it failed under ``run_anyway``, or its result expired)
        contributes None."""
        found = await self.result_store.get_many(list(task.depends_on))
        values = []
        for dep in task.depends_on:
            result = found.get(dep)
            values.append(
                result.result
                if result is not None and result.status is ResultStatus.SUCCESS
                else None
            )
        first: Any = values[0] if task.pass_results is PassResults.ONE and values else values
        return msgspec.structs.replace(task, args=(first, *task.args))

    # -- claiming --------------------------------------------------------------------------
    async def _claim_loop(self) -> None:
        assert self._stop is not None
        assert self._slot_free is not None
        backoff = 0.05
        while not self._stop.is_set():
            raise_if_cancelled()
            # backpressure: finished tasks whose results wait for their store count against it
            free = min(self.concurrency - len(self._running), self._buffer_room())
            if free <= 0:
                self._slot_free.clear()
                waiter = asyncio.ensure_future(self._slot_free.wait())
                stopper = asyncio.ensure_future(self._stop.wait())
                await asyncio.wait((waiter, stopper), return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
                continue
            try:
                tasks = await self.queue.dequeue_many(
                    self.queues,
                    free,
                    worker_id=self.worker_id,
                    lease=self.lease,
                    timeout=self.idle_timeout,
                    stop=self._stop,
                )
                backoff = 0.05
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                breaker = away(self.queue)
                if breaker is not None:  # it logged the outage once: wait for it quietly
                    await self._wait_out(breaker)
                    continue
                log.log(
                    logging.DEBUG if reported(self.queue) else logging.WARNING,
                    "worker %s: claiming failed (%s: %s); retrying in %.2fs",
                    self.name,
                    type(exc).__name__,
                    exc,
                    backoff,
                )
                await idle(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            for task in tasks:
                running = Running(task)
                self._running[task.id] = running
                running.runner = asyncio.create_task(
                    self._execute(running), name=f"omniq-task-{task.id}"
                )
                _report.received(task)
                if task.id in self._early_cancels:  # its signal came before the claim returned
                    del self._early_cancels[task.id]
                    self._stop_running(task.id, "cancel")
            if tasks:
                # the tasks just claimed start before the next claim is built and sent (an
                # enqueue->start latency of a claim's encoding and socket write otherwise)
                await asyncio.sleep(0)

    # -- running ---------------------------------------------------------------------------
    def _resolve(self, task: Task) -> Callable[..., Any]:
        if task.func_obj is not None:
            func: Callable[..., Any] = task.func_obj
            return func
        return registry.resolve(task.func, self.functions)

    async def _call(self, task: Task) -> Any:
        """The task's function, found and called with its arguments (and its dependencies'
        results when it takes them)."""
        func = self._resolve(task)
        call = task
        if task.pass_results is not PassResults.NONE and task.depends_on:
            call = await self._with_dependency_results(task)
        return await self.executor.run(call, func)

    async def _admit(self, running: Running) -> bool:
        """Whether a task with limits may run now; if not it is handed back to the queue with
        the eta its limit gives (PENDING, its attempt not counted) and its slot here freed."""
        task = running.task
        try:
            if running.stop_reason is not None:
                raise asyncio.CancelledError
            retry_at = await self.limits.admit(task, self.lease)
            if retry_at is None:
                return True
            await self.queue.release(task.id, task.claim or "", eta=retry_at)
            log.debug("task %s held back by its limits until %s", task.id, retry_at.isoformat())
        except asyncio.CancelledError:
            await self._record_outcome(self._on_stopped(running), task)
        except Exception as exc:  # the store failed: the lease returns the task, untouched
            log.warning(
                "task %s: could not check its limits (%s: %s); it returns when its lease expires",
                task.id,
                type(exc).__name__,
                exc,
            )
        self._running.pop(task.id, None)
        if self._slot_free is not None:
            self._slot_free.set()
        return False

    async def _execute(self, running: Running) -> None:
        running.started = True
        task = running.task
        if self.limits.applies(task) and not await self._admit(running):
            return
        self._emit(EventType.EXECUTING, task)
        started = time.perf_counter()
        notify = self._has_callbacks(task)
        if notify:
            self._spawn_callbacks(TaskOutcome("start", task, self.worker_id), "start")
        # omniq.current_task() in the task's code: its context is the runner's own, which thread
        # pools copy and the other executors pass on
        context = enter(task, self._progress.put)
        try:
            if running.stop_reason is not None:
                raise asyncio.CancelledError  # stopped before it began: recorded as any stop
            # no TTL check here: the claim is where an expired task is refused, atomically
            try:
                if run_wrappers:  # metrics time the run, tracing makes its span the current one
                    value = await run_wrapped(task, lambda: self._call(task))
                else:
                    value = await self._call(task)
            finally:
                if context.progress is not None:  # its last report, while the claim holds
                    await self._progress.flush(task.id)
        except asyncio.CancelledError:
            await self._record_outcome(self._on_stopped(running), task)
            return
        except Exception as exc:
            await self._record_outcome(self._on_error(task, exc, started), task)
            return
        finally:
            self._running.pop(task.id, None)
            if self._slot_free is not None:
                self._slot_free.set()
            if self.limits.held and task.id in self.limits.held:
                await self.limits.release(task.id)
        result = TaskResult.for_task(
            task, ResultStatus.SUCCESS, result=value, worker_id=self.worker_id
        )
        payload = None
        if not is_lossless(value):
            # a value that needs dill may be refused or unpicklable: find out now, for this task,
            # rather than failing the whole acknowledgement batch later (the bytes travel on)
            try:
                payload = self.result_store.serializer.encode_result(result)
            except SerializationError as exc:
                await self._on_error(task, exc, started)
                return
        self.stats.processed += 1
        self.stats.succeeded += 1
        duration = time.perf_counter() - started
        self._completions.append(Completion(task.id, task.claim or "", result, payload))
        self._completed_tasks.append((task, duration))
        _report.succeeded(task, duration)
        assert self._flush_wake is not None
        self._flush_wake.set()
        if notify:
            outcome = TaskOutcome(
                "success", task, self.worker_id, result=value, duration=round(duration, 6)
            )
            self._spawn_callbacks(outcome, "success", "complete")


__all__ = ["AsyncWorker", "WorkerStats"]
