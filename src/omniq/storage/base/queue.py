"""The task queue's required core: where tasks wait, are claimed under a lease, and end.

Public methods live here once, SAQ-style: they validate, serialize, emit events and keep the
semantics of ARCHITECTURE section 3, then call a backend's underscore primitives (declared,
with their contracts, in ``primitives.py``). The optional
capabilities (dependencies, schedules, worker registry, listing, purge) are mixins beside this
module; see the package docstring for what a backend must write.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from omniq._time import as_utc, utcnow
from omniq.callbacks import enqueue_hooks, run_enqueue_hooks
from omniq.config import get_settings
from omniq.exceptions import ConfigError, QueueNameError, TaskNotFound
from omniq.models.event import EventType, TaskEvent
from omniq.models.result import ResultStatus, TaskResult
from omniq.models.task import Task, TaskStatus, check_task
from omniq.queue.builder import (
    build_task,
    check_allowed_queue,
    default_queue_of,
    task_references,
    validate_queue_name,
)
from omniq.queue.retry import decide
from omniq.registry import enqueued_record
from omniq.serialization import Serializer
from omniq.storage.base.capabilities import Capability
from omniq.storage.base.primitives import QueuePrimitives
from omniq.storage.base.types import Completion, EventSink, Failure, HeartbeatStatus

if TYPE_CHECKING:
    from omniq.storage.base.results import BaseResultStorage

#: where ``fail`` may move a running task
_FAIL_STATUSES = (TaskStatus.PENDING, TaskStatus.DEAD, TaskStatus.CANCELLED)


class BaseTaskQueue(QueuePrimitives):
    """Where tasks wait, are claimed under a lease, and reach a final state.

    Wiring
    ------
    A queue decides some outcomes itself (a TTL expiry, a cancel of a waiting task, a lease that
    ran out of attempts) and emits events. It has two outlets for them, both optional:

    - ``result_storage``: where those outcomes' results go, so that ``get_result`` waiters
      wake up (without one they are only in the task's state);
    - ``event_logger``: an :class:`EventSink` for its events (without one: no event work at all).

    Whoever builds the queue knowing them passes them to the constructor (a backend bundle does,
    with its own result storage). A queue built before its companions (``SQLiteQueue(path)``
    handed to ``AsyncOmniQ``) is connected by :meth:`wire`, the one way to change them
    afterwards; the composition root calls it: the façade, for the components it was given,
    and a worker started on its own. A façade and the workers it starts share one queue; the
    façade wires it, and its workers only fill in an outlet nobody wired (``keep_existing``).
    """

    def __init__(
        self,
        *,
        project_name: str | None = None,
        queues: Sequence[str] | None = None,
        default_queue: str | None = None,
        lease_timeout: float | None = None,
        secret_key: str | bytes | None = None,
        allow_dill: bool | None = None,
        serializer: Serializer | None = None,
        result_storage: BaseResultStorage | None = None,
        event_logger: EventSink | None = None,
    ) -> None:
        super().__init__(
            project_name=project_name,
            secret_key=secret_key,
            allow_dill=allow_dill,
            serializer=serializer,
        )
        self.queues: list[str] | None = (
            [validate_queue_name(q) for q in queues] if queues is not None else None
        )
        if self.queues is not None and not self.queues:
            raise ValueError("queues must name at least one queue")
        #: where a task goes when enqueue names no queue
        self.default_queue = default_queue_of(self.queues, default_queue)
        self.lease_timeout = float(lease_timeout or get_settings().LEASE_TIMEOUT)
        if self.lease_timeout <= 0:
            raise ValueError(f"lease_timeout must be positive, got {lease_timeout!r}")
        self._result_storage = result_storage
        self._event_logger = event_logger
        self._enqueued: set[str] | None = None

    # -- wiring (see the class docstring) --------------------------------------------------
    @property
    def result_storage(self) -> BaseResultStorage | None:
        """Where results of outcomes this queue decides itself are written."""
        return self._result_storage

    @property
    def event_logger(self) -> EventSink | None:
        """Where this queue's events go; None: no event work at all."""
        return self._event_logger

    def wire(
        self,
        *,
        result_storage: BaseResultStorage | None = None,
        event_logger: EventSink | None = None,
        keep_existing: bool = False,
    ) -> None:
        """Connects the outlets of a queue built before its companions; an outlet not given is
        left as it is. With ``keep_existing`` an outlet already wired is kept (a worker on a
        queue its façade wired)."""
        if result_storage is not None and not (keep_existing and self._result_storage):
            self._result_storage = result_storage
        if event_logger is not None and not (keep_existing and self._event_logger):
            self._event_logger = event_logger

    def unwire(self, event_logger: EventSink) -> None:
        """Disconnects ``event_logger`` if it is the one wired: its owner is closing it."""
        if self._event_logger is event_logger:
            self._event_logger = None

    def create_result_storage(self) -> BaseResultStorage:
        """A result storage of this queue's own kind, on the same connection settings: the
        default wherever results are needed and none was configured. Every backend writes it;
        one without a result storage of its own says so here."""
        raise ConfigError(
            f"the {self.backend_name} task queue has no result storage of its own: "
            "pass result_store=... to AsyncOmniQ or the worker"
        )

    # -- events ----------------------------------------------------------------------------
    def _emit(self, event_type: EventType, task: Task, **details: Any) -> None:
        if self.event_logger is not None:
            self.event_logger.emit(TaskEvent.for_task(task, event_type, **details))

    async def _write_final_results(self, tasks: Iterable[Task]) -> None:
        """Results for outcomes no worker produced (EXPIRED, CANCELLED, DEAD by lease)."""
        if self.result_storage is None:
            return
        status_map = {
            TaskStatus.EXPIRED: ResultStatus.EXPIRED,
            TaskStatus.CANCELLED: ResultStatus.CANCELLED,
            TaskStatus.DEAD: ResultStatus.ERROR,
        }
        results = [
            TaskResult.for_task(
                t,
                status_map[t.status],
                error=t.error_message or t.status.value,
                error_type=t.error_type,
            )
            for t in tasks
            if t.status in status_map
        ]
        if results:
            await self.result_storage.set_many(results)

    # -- enqueue ---------------------------------------------------------------------------
    def _resolve_queues(self, queues: str | Sequence[str] | None) -> list[str]:
        if queues is None:
            return list(self.queues) if self.queues else [self.default_queue]
        if isinstance(queues, str):
            queues = [q.strip() for q in queues.split(",") if q.strip()]
        names = [check_allowed_queue(q, self.queues) for q in queues]
        if not names:
            raise QueueNameError(f"no queue to serve in {queues!r}")
        return names

    def build_task(self, func: Callable[..., Any] | str | Task, **options: Any) -> Task:
        if isinstance(func, Task):
            extra = {k: v for k, v in options.items() if v is not None}
            if extra:
                raise TypeError(
                    f"options {sorted(extra)} cannot be combined with a Task object; set them on the Task"
                )
            return self._enqueued_by_app(func)
        return self._enqueued_by_app(build_task(func, default_queue=self.default_queue, **options))

    @property
    def enqueued_functions(self) -> set[str]:
        """The function references this process enqueued *to this store* (through
        :meth:`build_task`): a worker serving the store runs them without being told
        (omniq.registry). One record per store (backend, server, project), shared by every
        queue object of the process on it (seeds/003 enqueues through one and runs the worker of
        another), so a process that enqueues ``f`` to one store does not make its worker of
        another store (other writers) run an ``f`` found there. Nothing read from storage is
        ever added."""
        if self._enqueued is None:
            self._enqueued = enqueued_record(
                self.backend_name, self.server_label(), self.project_name
            )
        return self._enqueued

    def _enqueued_by_app(self, task: Task) -> Task:
        self.enqueued_functions.update(task_references(task))
        return task

    async def enqueue(self, func: Callable[..., Any] | str | Task, **options: Any) -> str:
        """Stores one task and returns its id. Idempotent on ``task_id``."""
        if isinstance(func, Task):
            ids = await self.enqueue_many([self.build_task(func, **options)])
        else:
            ids = await self.enqueue_built([self.build_task(func, **options)])
        return ids[0]

    async def enqueue_many(self, tasks: Iterable[Task]) -> list[str]:
        """Stores many tasks in one round trip where the backend allows; returns their ids.

        A task with ``depends_on`` is stored WAITING and becomes PENDING when every dependency
        has succeeded (see :meth:`_settle`). Dependencies must exist already or come in the same
        batch; an unknown id or a cycle inside the batch is refused before anything is stored.
        """
        batch: list[Task] = []
        for task in tasks:
            if not isinstance(task, Task):
                raise TypeError(f"enqueue_many takes Task objects, got {task!r}")
            check_allowed_queue(task.queue_name, self.queues)
            limited = task.rate_limit is not None or task.concurrency_key is not None
            if limited and not self.supports(Capability.LIMITS):
                raise self._unsupported(Capability.LIMITS)
            batch.append(check_task(task))
        return await self.enqueue_built(batch)

    async def enqueue_built(self, batch: list[Task]) -> list[str]:
        """:meth:`enqueue_many` of tasks that :meth:`build_task` has just built from enqueue
        arguments, unchanged since: it checked every value already, so only the queue is held
        against this task queue's ``queues`` here (checking them all again cost a sequential
        enqueue about a tenth of its Python time)."""
        if self.queues is not None:
            for task in batch:
                if task.queue_name not in self.queues:
                    check_allowed_queue(task.queue_name, self.queues)  # raises naming it
        if not batch:
            return []
        if enqueue_hooks:  # metrics count, tracing adds the trace context to the metadata
            run_enqueue_hooks(batch)
        await self._ensure()
        dependents = [t for t in batch if t.depends_on]
        if dependents:
            await self._check_dependencies(batch, dependents)
        prepared: list[tuple[Task, bytes]] = []
        for task in batch:
            task.status = TaskStatus.WAITING if task.depends_on else TaskStatus.PENDING
            prepared.append((task, self.serializer.encode_task(task)))
        created = await self._enqueue(prepared)
        if self.event_logger is not None:
            for task, new in zip(batch, created, strict=True):
                if not new:
                    continue
                if task.status is TaskStatus.WAITING:
                    self._emit(EventType.WAITING, task, depends_on=list(task.depends_on))
                else:
                    self._emit(
                        EventType.ENQUEUED, task, eta=task.eta.isoformat() if task.eta else None
                    )
        # a dependency may have finished before its dependent was stored, with nobody left to
        # notice: settle the new ones now (settling twice is harmless, it is compare-and-set)
        fresh = [t for t, new in zip(batch, created, strict=True) if new and t.depends_on]
        if fresh:
            await self._settle(fresh)
        return [task.id for task in batch]

    def enqueue_built_blocking(self, task: Task) -> str | None:
        """The sync API's enqueue of one task just built by :meth:`build_task`, made in the
        caller's thread where the store can (:meth:`_enqueue_blocking`): its id, or None when
        not made, and the caller then takes the asyncio way, which does everything this leaves
        to it (connecting, the breaker, enqueue hooks, dependencies, events, errors)."""
        if (
            not self._connected
            or not self.breaker.healthy
            or enqueue_hooks
            or task.depends_on
            or self.event_logger is not None
            or (self.queues is not None and task.queue_name not in self.queues)
        ):
            return None
        task.status = TaskStatus.PENDING
        created = self._enqueue_blocking([(task, self.serializer.encode_task(task))])
        return None if created is None else task.id

    def _enqueue_blocking(self, items: list[tuple[Task, bytes]]) -> list[bool] | None:
        """:meth:`_enqueue` without the event loop, or None where the store has no such way
        (the default) or this call could not use it."""
        return None

    # -- claim -----------------------------------------------------------------------------
    async def dequeue(
        self,
        queues: str | Sequence[str] | None = None,
        *,
        worker_id: str | None = None,
        lease: float | None = None,
        timeout: float | None = None,
    ) -> Task | None:
        """Claims one task (RUNNING, under a lease). ``timeout`` seconds to wait; None: don't wait."""
        tasks = await self.dequeue_many(
            queues, 1, worker_id=worker_id, lease=lease, timeout=timeout
        )
        return tasks[0] if tasks else None

    async def dequeue_many(
        self,
        queues: str | Sequence[str] | None = None,
        limit: int = 1,
        *,
        worker_id: str | None = None,
        lease: float | None = None,
        timeout: float | None = None,
        stop: asyncio.Event | None = None,
    ) -> list[Task]:
        """Claims up to ``limit`` tasks in one step: the first non-empty queue first, then by
        priority, eta and enqueue order. Waits on the store's native wake-up, never a sleep loop.
        Setting ``stop`` ends the wait early (a worker shutting down); a claim in flight is never
        interrupted, so no claimed task is dropped on the floor."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit!r}")
        names = self._resolve_queues(queues)
        lease_s = float(lease or self.lease_timeout)
        await self._ensure()
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        claim_first = True
        while True:
            if claim_first:
                claimed, ended = await self._claim(names, limit, worker_id, lease_s, utcnow())
                if not self.breaker.healthy:  # reached the server: close now, not after the wait
                    self.breaker.succeeded()
                await self._settle_ended(ended)
                if claimed:
                    return claimed
            if deadline is None:
                return []
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (stop is not None and stop.is_set()):
                return []
            got = await self._wait_and_claim(names, limit, worker_id, lease_s, remaining, stop)
            # a claim made with the wake-up is returned even when ``stop`` came meanwhile: the
            # worker hands back what it cannot run, so no claimed task is dropped
            claim_first = got is None
            if got is not None:
                if not self.breaker.healthy:
                    self.breaker.succeeded()
                await self._settle_ended(got[1])
                if got[0]:
                    return got[0]
            if stop is not None and stop.is_set():
                return []

    async def _settle_ended(self, ended: list[Task]) -> None:
        """Reports the tasks a claim ended instead of claiming (EXPIRED by their TTL, DEAD with
        an undecodable payload): events, final results, dependents."""
        if not ended:
            return
        for task in ended:
            if task.status is TaskStatus.EXPIRED:
                self._emit(EventType.EXPIRED, task, reason="ttl")
            else:
                self._emit(
                    EventType.DEAD,
                    task,
                    reason="undecodable payload",
                    error=task.error_message,
                )
        await self._write_final_results(ended)
        await self._settle_dependents([t.id for t in ended])

    async def heartbeat(
        self, task_id: str, claim: str, *, lease: float | None = None
    ) -> HeartbeatStatus:
        result = await self.heartbeat_many([(task_id, claim)], lease=lease)
        return result[task_id]

    async def heartbeat_many(
        self, claims: Sequence[tuple[str, str]], *, lease: float | None = None
    ) -> dict[str, HeartbeatStatus]:
        """Renews the leases of running tasks in one round trip."""
        if not claims:
            return {}
        await self._ensure()
        return await self._heartbeat(list(claims), float(lease or self.lease_timeout), utcnow())

    # -- outcomes --------------------------------------------------------------------------
    def stores_results_with(self, result_storage: BaseResultStorage | None) -> bool:
        """True when ``result_storage`` lives in this queue's database, so a completion writes the
        result and the acknowledgement in one transaction."""
        return False

    async def complete(
        self,
        task_id: str,
        claim: str,
        result: TaskResult | None = None,
        *,
        result_storage: BaseResultStorage | None = None,
    ) -> bool:
        acks = await self.complete_many(
            [Completion(task_id, claim, result)], result_storage=result_storage
        )
        return acks[0]

    async def complete_many(
        self,
        completions: Sequence[Completion],
        *,
        result_storage: BaseResultStorage | None = None,
    ) -> list[bool]:
        """Marks tasks SUCCESS. Results are stored *before* the acknowledgement (or with it, in one
        transaction, when the result store shares this queue's database). A stale claim is
        refused (False), so a zombie worker cannot finish a task another worker re-claimed."""
        if not completions:
            return []
        await self._ensure()
        together = result_storage is not None and self.stores_results_with(result_storage)
        if result_storage is not None and not together:
            encode = result_storage.serializer
            await result_storage.set_encoded(
                [(c.result, c.encoded_result(encode)) for c in completions if c.result is not None]
            )
        acks = await self._complete(
            list(completions), utcnow(), result_storage if together else None
        )
        await self._settle_dependents(
            [c.task_id for c, ack in zip(completions, acks, strict=True) if ack]
        )
        return acks

    async def fail(
        self,
        task_id: str,
        claim: str,
        *,
        error_type: str | None = None,
        error_message: str | None = None,
        error_traceback: str | None = None,
        retry_at: datetime | None = None,
        status: TaskStatus | None = None,
    ) -> Task | None:
        """Records a failed attempt. ``status`` is the outcome decided by
        :func:`omniq.queue.retry.decide` (the worker's way): PENDING to run again at
        ``retry_at`` (event RETRY), DEAD (event DEAD), or CANCELLED for a cancelled running task.
        Without ``status``, ``retry_at`` asks for a retry, and the same function decides from the
        stored task: none is left after the last attempt, which ends DEAD with its result
        written; no ``retry_at`` means DEAD. Returns the updated task, or None when the claim is
        stale. The store only records the outcome, under its claim check."""
        if status is not None and status not in _FAIL_STATUSES:
            raise ValueError(f"fail() cannot move a task to {status!r}")
        await self._ensure()
        refused = False
        if status is None and retry_at is not None:
            current = await self._get_task(task_id)
            if current is None:
                return None
            refused = not decide(current.retry_policy, current.attempts).retries
            status = TaskStatus.DEAD if refused else TaskStatus.PENDING
        final = status or TaskStatus.DEAD
        task = await self._fail(
            Failure(
                task_id,
                claim,
                final,
                error_type,
                error_message,
                error_traceback,
                as_utc(retry_at) if retry_at is not None and final is TaskStatus.PENDING else None,
            ),
            utcnow(),
        )
        if task is None:
            return None
        if task.status is TaskStatus.PENDING:
            self._emit(
                EventType.RETRY,
                task,
                retry_at=task.eta.isoformat() if task.eta else None,
                error_type=error_type,
                error=error_message,
            )
        elif task.status is TaskStatus.DEAD:
            self._emit(EventType.DEAD, task, error_type=error_type, error=error_message)
            if refused:  # the caller expected a retry, so it will not write a result
                await self._write_final_results([task])
        else:
            self._emit(EventType.CANCELLED, task, reason="cancelled while running")
        if task.status.is_final:
            await self._settle_dependents([task.id])
        return task

    async def release(self, task_id: str, claim: str, *, eta: datetime | None = None) -> bool:
        """Hands a claimed task back untouched (a worker shutting down, or one holding a task
        back for its rate or concurrency limit): PENDING, ready at once or at ``eta``, and the
        attempt it was claimed for does not count. False when the claim is stale."""
        await self._ensure()
        task = await self._release(task_id, claim, utcnow(), as_utc(eta) if eta else None)
        if task is not None and task.status is TaskStatus.CANCELLED:  # cancel was requested
            self._emit(EventType.CANCELLED, task, reason="cancelled while handed back")
            await self._write_final_results([task])
            await self._settle_dependents([task.id])
        return task is not None

    async def cancel(self, task_id: str) -> bool:
        """Cancels a pending, delayed or waiting task at once; a running one is asked to stop (its
        worker hears of it through the cancel signal where the store has one, else at its next
        heartbeat). False if the task had already finished."""
        await self._ensure()
        task = await self._cancel(task_id, utcnow())
        if task is None:
            raise TaskNotFound(f"no task with id {task_id!r}")
        if task.status is TaskStatus.CANCELLED:
            self._emit(EventType.CANCELLED, task, reason="cancelled")
            await self._write_final_results([task])
            await self._settle_dependents([task.id])
            return True
        if task.status is TaskStatus.RUNNING and task.cancel_requested:
            await self._cancel_requested(task)  # the cancel signal, where the store has one
            return True
        return False

    async def requeue(self, task_id: str, *, reset_attempts: bool = True) -> bool:
        """Puts a DEAD, CANCELLED or EXPIRED task back to PENDING (dead-letter re-drive)."""
        await self._ensure()
        task = await self._requeue(task_id, reset_attempts, utcnow())
        if task is None:
            if await self._get_task(task_id) is None:
                raise TaskNotFound(f"no task with id {task_id!r}")
            return False
        self._emit(EventType.REQUEUED, task)
        return True

    async def recover_expired(self) -> int:
        """Running tasks whose lease ran out go back to PENDING, or to DEAD when out of attempts."""
        await self._ensure()
        tasks = await self._recover_expired(utcnow())
        for task in tasks:
            self._emit(EventType.LEASE_EXPIRED, task)
            self._emit(
                EventType.RETRY if task.status is TaskStatus.PENDING else EventType.DEAD,
                task,
                reason="lease expired",
            )
        dead = [t for t in tasks if t.status is TaskStatus.DEAD]
        await self._write_final_results(dead)
        await self._settle_dependents([t.id for t in dead])
        return len(tasks)

    async def cleanup(self) -> dict[str, int]:
        """TTL sweep: pending tasks past ``expires_at`` become EXPIRED (event EXPIRED)."""
        await self._ensure()
        expired = await self._expire(utcnow())
        for task in expired:
            self._emit(EventType.EXPIRED, task, reason="ttl")
        await self._write_final_results(expired)
        await self._settle_dependents([t.id for t in expired])
        return {"expired_tasks": len(expired)}

    # -- reading ---------------------------------------------------------------------------
    async def get_task(self, task_id: str) -> Task | None:
        await self._ensure()
        return await self._get_task(task_id)
