"""The three storage interfaces (ARCHITECTURE section 2).

Public methods live here once, SAQ-style: they validate, serialize, emit events and keep the
semantics of section 3, then call a backend's underscore primitives. A backend implements only the
primitives (each one atomic in its store) and never re-implements policy.
"""

from __future__ import annotations

import asyncio
import enum
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Self

import msgspec

from omniq._lifecycle import AsyncConnectable
from omniq._time import as_utc, utcnow
from omniq.config import get_logger, get_settings
from omniq.exceptions import QueueNameError, TaskNotFound
from omniq.models.event import EventType, TaskEvent
from omniq.models.result import ResultStatus, TaskResult
from omniq.models.schedule import Schedule, ScheduleState
from omniq.models.task import DependencyPolicy, Task, TaskStatus, check_task
from omniq.models.worker import WorkerInfo
from omniq.queue.builder import (
    build_task,
    check_allowed_queue,
    default_queue_of,
    mark_enqueued,
    validate_queue_name,
)
from omniq.serialization import Serializer

if TYPE_CHECKING:
    from omniq.events.logger import EventLogger

log = get_logger("storage")


class HeartbeatStatus(enum.StrEnum):
    OK = "ok"  # lease renewed
    LOST = "lost"  # the claim is stale: stop, the task belongs to someone else now
    CANCEL = "cancel"  # lease renewed, but cancellation was requested: stop the task


class Completion(msgspec.Struct):
    """A finished task to acknowledge, with the result to store before the acknowledgement."""

    task_id: str
    claim: str
    result: TaskResult | None = None


class Failure(msgspec.Struct, frozen=True):
    """A failed attempt to record (see ``BaseTaskQueue._fail``): where the task goes
    (``status``: PENDING to retry at ``retry_at``, DEAD or CANCELLED) and the error."""

    task_id: str
    claim: str
    status: TaskStatus
    error_type: str | None = None
    error_message: str | None = None
    error_traceback: str | None = None
    retry_at: datetime | None = None


def new_claim(worker_id: str | None, attempt: int) -> str:
    """A claim token: who claimed, which attempt, and randomness so no two claims are equal."""
    return f"{worker_id or 'anonymous'}:{attempt}:{secrets.token_hex(4)}"


def dependency_verdict(task: Task, deps: dict[str, Task]) -> bool | str | None:
    """What a WAITING task's dependencies say: True (run it), a reason (cancel it), or None
    (keep waiting). A dependency that no longer exists counts as failed: nobody can tell."""
    run_anyway = task.dependency_policy is DependencyPolicy.RUN_ANYWAY
    pending = False
    for dep_id in task.depends_on:
        dep = deps.get(dep_id)
        if dep is None:
            if not run_anyway:
                return f"dependency {dep_id} no longer exists"
            continue
        if dep.status is TaskStatus.SUCCESS:
            continue
        if dep.status.is_final:
            if not run_anyway:
                return f"dependency {dep_id} ended {dep.status.value}"
            continue
        pending = True
    return None if pending else True


class Component(AsyncConnectable, ABC):
    """Connection lifecycle shared by every storage component: lazy connect, idempotent close."""

    backend_name: ClassVar[str] = "base"
    #: True where the store is on this machine (memory, file, SQLite): dill is accepted there
    #: without a key. Network backends set False.
    is_local: ClassVar[bool] = True

    def __init__(
        self,
        *,
        project_name: str | None = None,
        secret_key: str | bytes | None = None,
        allow_dill: bool | None = None,
        serializer: Serializer | None = None,
    ) -> None:
        settings = get_settings()
        self.project_name = validate_queue_name(project_name or settings.PROJECT_NAME)
        if serializer is None:
            serializer = Serializer(
                secret_key if secret_key is not None else settings.SECRET_KEY,
                allow_dill=allow_dill if allow_dill is not None else settings.ALLOW_DILL,
                local=self.is_local,
            )
        self.serializer = serializer
        self._connected = False
        self._connect_lock: asyncio.Lock | None = None

    @property
    def connected(self) -> bool:
        return self._connected

    async def connect(self) -> None:
        if self._connected:
            return
        if self._connect_lock is None:
            self._connect_lock = asyncio.Lock()
        async with self._connect_lock:
            if not self._connected:
                await self._connect()
                self._connected = True

    async def close(self) -> None:
        if self._connected:
            self._connected = False
            await self._close()

    async def _ensure(self) -> None:
        if not self._connected:
            await self.connect()

    async def _connect(self) -> None:
        """Opens connections / creates schema. Default: nothing to do."""

    async def _close(self) -> None:
        """Releases connections. Default: nothing to do."""

    async def health_check(self) -> dict[str, Any]:
        try:
            await self._ensure()
            details = await self._health()
            return {"status": "healthy", "connected": True, "backend": self.backend_name, **details}
        except Exception as exc:
            return {
                "status": "unhealthy",
                "connected": False,
                "backend": self.backend_name,
                "error": f"{type(exc).__name__}: {exc}",
            }

    async def _health(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: Any) -> Self:
        data = config.to_dict() if hasattr(config, "to_dict") else msgspec.structs.asdict(config)
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> Self:
        return cls(**config)

    @classmethod
    def from_config_file(cls, path: str) -> Self:
        from omniq.config.loader import load_yaml

        return cls.from_dict(load_yaml(path))


# ---------------------------------------------------------------------------------------------
class BaseTaskQueue(Component):
    """Where tasks wait, are claimed under a lease, and reach a final state."""

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
        #: Set by the façade or a worker; None means no event work at all.
        self.event_logger: EventLogger | None = None
        #: Where final outcomes decided by the queue itself (expiry, cancellation, a lease that ran
        #: out of attempts) are written, so that ``get_result`` waiters wake up.
        self.result_storage: BaseResultStorage | None = None

    def create_result_storage(self) -> BaseResultStorage:
        """A result storage of this queue's own kind, on the same connection settings: the
        default wherever results are needed and none was configured. Backends override it."""
        from omniq.storage.memory import AsyncMemoryResultStorage

        return AsyncMemoryResultStorage(project_name=self.project_name, serializer=self.serializer)

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
            return mark_enqueued(func)
        return build_task(func, default_queue=self.default_queue, **options)

    async def enqueue(self, func: Callable[..., Any] | str | Task, **options: Any) -> str:
        """Stores one task and returns its id. Idempotent on ``task_id``."""
        ids = await self.enqueue_many([self.build_task(func, **options)])
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
            batch.append(check_task(task))
        if not batch:
            return []
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

    async def _check_dependencies(self, batch: list[Task], dependents: list[Task]) -> None:
        in_batch = {t.id for t in batch}
        for task in dependents:
            if len(set(task.depends_on)) != len(task.depends_on):
                raise ValueError(f"task {task.id!r} lists a dependency twice: {task.depends_on!r}")
            if task.id in task.depends_on:
                raise ValueError(f"task {task.id!r} depends on itself")
        outside = sorted({d for t in dependents for d in t.depends_on} - in_batch)
        if outside:
            found = await self._get_tasks(outside)
            for task in dependents:
                for dep in task.depends_on:
                    if dep not in in_batch and dep not in found:
                        raise TaskNotFound(f"task {task.id!r} depends on unknown task {dep!r}")
        from omniq.workflows.graph import find_cycle

        cycle = find_cycle({t.id: [d for d in t.depends_on if d in in_batch] for t in batch})
        if cycle:
            raise ValueError(f"dependency cycle: {' -> '.join(cycle)}")

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
        while True:
            claimed, ended = await self._claim(names, limit, worker_id, lease_s, utcnow())
            if ended:
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
            if claimed:
                return claimed
            if deadline is None:
                return []
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (stop is not None and stop.is_set()):
                return []
            await self._wait_for_tasks(names, remaining, stop)
            if stop is not None and stop.is_set():
                return []

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
            results = [c.result for c in completions if c.result is not None]
            if results:
                await result_storage.set_many(results)
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
        """Records a failed attempt: back to PENDING at ``retry_at`` (event RETRY), or DEAD when
        ``retry_at`` is None or no attempt is left (event DEAD); ``status=CANCELLED`` ends a
        cancelled running task. Returns the updated task, or None when the claim is stale."""
        final = status or (TaskStatus.PENDING if retry_at is not None else TaskStatus.DEAD)
        if final not in (TaskStatus.PENDING, TaskStatus.DEAD, TaskStatus.CANCELLED):
            raise ValueError(f"fail() cannot move a task to {final!r}")
        await self._ensure()
        task = await self._fail(
            Failure(
                task_id,
                claim,
                final,
                error_type,
                error_message,
                error_traceback,
                as_utc(retry_at) if retry_at is not None else None,
            ),
            utcnow(),
        )
        if task is None:
            return None
        # the backend has the last word: a retry asked for on the last attempt ends DEAD
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
            if retry_at is not None:  # the caller expected a retry, so it will not write a result
                await self._write_final_results([task])
        else:
            self._emit(EventType.CANCELLED, task, reason="cancelled while running")
        if task.status.is_final:
            await self._settle_dependents([task.id])
        return task

    async def release(self, task_id: str, claim: str) -> bool:
        """Hands a claimed task back untouched (a worker shutting down): PENDING at once, and the
        attempt it was claimed for does not count. False when the claim is stale."""
        await self._ensure()
        task = await self._release(task_id, claim, utcnow())
        if task is not None and task.status is TaskStatus.CANCELLED:  # cancel was requested
            self._emit(EventType.CANCELLED, task, reason="cancelled while handed back")
            await self._write_final_results([task])
            await self._settle_dependents([task.id])
        return task is not None

    async def cancel(self, task_id: str) -> bool:
        """Cancels a pending, delayed or waiting task at once; a running one is asked to stop (its
        worker sees the request at its next heartbeat). False if the task had already finished."""
        await self._ensure()
        task = await self._cancel(task_id, utcnow())
        if task is None:
            raise TaskNotFound(f"no task with id {task_id!r}")
        if task.status is TaskStatus.CANCELLED:
            self._emit(EventType.CANCELLED, task, reason="cancelled")
            await self._write_final_results([task])
            await self._settle_dependents([task.id])
            return True
        return task.status is TaskStatus.RUNNING and task.cancel_requested

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

    async def list_dead(
        self, queue: str | None = None, *, limit: int = 100, offset: int = 0
    ) -> list[Task]:
        return await self.list_tasks(
            queue=queue, status=TaskStatus.DEAD, limit=limit, offset=offset
        )

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

    # -- dependencies ----------------------------------------------------------------------
    async def _settle_dependents(self, finished: Sequence[str]) -> None:
        """Moves on the WAITING tasks that depend on tasks which just reached a final state.

        Every caller runs this *after* its own transition is stored, so of two dependencies
        finishing at the same time at least one sees the other final; the store's
        compare-and-set (WAITING -> PENDING/CANCELLED) makes sure only one acts. A process that
        dies between the two steps leaves the dependent WAITING until the next
        :meth:`settle_waiting` sweep (every worker runs one in its upkeep loop).
        """
        if not finished:
            return
        try:
            waiting = await self._dependents(list(finished))
            if waiting:
                await self._settle(waiting)
        except Exception as exc:
            # the transition itself is stored: failing its caller now would only mislead it (a
            # worker would re-send acknowledgements that already landed)
            log.warning(
                "settling the dependents of %d finished tasks failed (%s: %s); the upkeep sweep "
                "will retry",
                len(finished),
                type(exc).__name__,
                exc,
            )

    async def settle_waiting(self, limit: int = 1000) -> int:
        """The crash-safety sweep: settles up to ``limit`` WAITING tasks whose dependencies have
        all finished. Returns how many moved on."""
        await self._ensure()
        waiting = await self._list_tasks(None, TaskStatus.WAITING, limit, 0)
        return await self._settle(waiting) if waiting else 0

    async def _settle(self, waiting: list[Task]) -> int:
        moved = 0
        while waiting:
            deps = await self._get_tasks(sorted({d for t in waiting for d in t.depends_on}))
            ready: list[str] = []
            doomed: list[tuple[str, str]] = []
            for task in waiting:
                verdict = dependency_verdict(task, deps)
                if verdict is True:
                    ready.append(task.id)
                elif isinstance(verdict, str):
                    doomed.append((task.id, verdict))
            now = utcnow()
            for task in await self._promote(ready, now) if ready else []:
                moved += 1
                self._emit(EventType.ENQUEUED, task, reason="dependencies met")
            cancelled = await self._cancel_waiting(doomed, now) if doomed else []
            for task in cancelled:
                moved += 1
                self._emit(EventType.DEPENDENCY_FAILED, task, reason=task.error_message)
                self._emit(EventType.CANCELLED, task, reason=task.error_message)
            await self._write_final_results(cancelled)
            # a cancelled dependent is final too: its own dependents follow (a cascade)
            waiting = await self._dependents([t.id for t in cancelled]) if cancelled else []
        return moved

    # -- workers -----------------------------------------------------------------------------
    async def register_worker(self, info: WorkerInfo, ttl: float) -> None:
        """Publishes a worker's state for ``omniq info``; it disappears ``ttl`` seconds after
        the last call unless renewed (a worker that is killed cannot say goodbye)."""
        await self._ensure()
        payload = msgspec.json.encode(info)
        await self._save_worker(info.worker_id, payload, utcnow() + timedelta(seconds=ttl))

    async def unregister_worker(self, worker_id: str) -> bool:
        await self._ensure()
        return await self._delete_worker(worker_id)

    async def list_workers(self) -> list[WorkerInfo]:
        """Workers alive (renewed within their ttl), oldest first."""
        await self._ensure()
        found = []
        for payload in await self._list_workers(utcnow()):
            try:
                found.append(msgspec.json.decode(payload, type=WorkerInfo))
            except msgspec.DecodeError:  # a newer or foreign writer: skip, do not fail the list
                continue
        return sorted(found, key=lambda w: (w.started_at, w.worker_id))

    # -- reading ---------------------------------------------------------------------------
    async def get_task(self, task_id: str) -> Task | None:
        await self._ensure()
        return await self._get_task(task_id)

    async def list_tasks(
        self,
        queue: str | None = None,
        status: TaskStatus | str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Task]:
        if queue is not None:
            validate_queue_name(queue)
        st = TaskStatus(status) if status is not None else None
        if limit < 0 or offset < 0:
            raise ValueError(f"limit and offset must be >= 0, got {limit!r}, {offset!r}")
        await self._ensure()
        return await self._list_tasks(queue, st, limit, offset)

    async def get_queue_size(self, queue: str = "default") -> int:
        """Tasks waiting in ``queue`` (pending, including delayed ones)."""
        validate_queue_name(queue)
        await self._ensure()
        return await self._queue_size(queue)

    async def stats(self) -> dict[str, dict[str, int]]:
        """Counts by queue and status: ``{"default": {"pending": 3, "success": 10}}``."""
        await self._ensure()
        return await self._stats()

    async def purge(self, queue: str = "default") -> int:
        """Deletes the tasks waiting in ``queue`` (pending and waiting); returns how many."""
        validate_queue_name(queue)
        await self._ensure()
        return await self._purge(queue)

    # -- schedules -------------------------------------------------------------------------
    async def save_schedule(self, schedule: Schedule) -> str:
        check_allowed_queue(schedule.queue_name, self.queues)
        payload = self.serializer.encode_schedule(schedule)
        await self._ensure()
        await self._save_schedule(schedule, payload)
        self._emit_schedule(
            EventType.SCHEDULED,
            schedule,
            cron=schedule.cron,
            interval=schedule.interval,
            timezone=schedule.timezone,
            next_run_at=schedule.next_run_at.isoformat() if schedule.next_run_at else None,
        )
        return schedule.id

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        await self._ensure()
        return await self._get_schedule(schedule_id)

    async def list_schedules(self, state: ScheduleState | str | None = None) -> list[Schedule]:
        await self._ensure()
        st = ScheduleState(state) if state is not None else None
        return await self._list_schedules(st)

    async def _set_state(self, schedule_id: str, state: ScheduleState, event: EventType) -> bool:
        await self._ensure()
        schedule = await self._get_schedule(schedule_id)
        if schedule is None:
            raise TaskNotFound(f"no schedule with id {schedule_id!r}")
        if schedule.state is state:
            return False
        changed = await self._update_schedule(schedule_id, {"state": state})
        if changed:
            self._emit_schedule(event, schedule)
        return changed

    def _emit_schedule(self, event_type: EventType, schedule: Schedule, **details: Any) -> None:
        """A schedule's own event: its id stands as the task id, so ``get_events(sid)`` finds
        it; details that are None are left out."""
        if self.event_logger is not None:
            self.event_logger.emit(
                TaskEvent(
                    task_id=schedule.id,
                    schedule_id=schedule.id,
                    event_type=event_type,
                    queue_name=schedule.queue_name,
                    func=schedule.func,
                    details={k: v for k, v in details.items() if v is not None},
                )
            )

    async def pause_schedule(self, schedule_id: str) -> bool:
        return await self._set_state(schedule_id, ScheduleState.PAUSED, EventType.SCHEDULE_PAUSED)

    async def resume_schedule(self, schedule_id: str) -> bool:
        return await self._set_state(schedule_id, ScheduleState.ACTIVE, EventType.SCHEDULE_RESUMED)

    async def delete_schedule(self, schedule_id: str) -> bool:
        await self._ensure()
        return await self._delete_schedule(schedule_id)

    async def claim_due_schedules(self, now: datetime | None = None) -> list[Schedule]:
        """Active schedules whose ``next_run_at`` has come. The caller advances each one with
        :meth:`advance_schedule`, a compare-and-set that only one scheduler loop wins."""
        await self._ensure()
        return await self._due_schedules(as_utc(now or utcnow()))

    async def advance_schedule(
        self, schedule_id: str, expected_next_run_at: datetime | None, changes: dict[str, Any]
    ) -> bool:
        await self._ensure()
        return await self._update_schedule(
            schedule_id, changes, expected_next_run_at=expected_next_run_at, check_next_run=True
        )

    # -- backend primitives (each atomic in its store) -------------------------------------
    @abstractmethod
    async def _enqueue(self, items: list[tuple[Task, bytes]]) -> list[bool]:
        """Stores tasks; an id that already exists is left alone (False in the returned flags)."""

    @abstractmethod
    async def _claim(
        self, queues: list[str], limit: int, worker_id: str | None, lease: float, now: datetime
    ) -> tuple[list[Task], list[Task]]:
        """Atomically claims up to ``limit`` ready tasks. Returns (claimed, ended): tasks that ended
        on the way instead of being claimed, EXPIRED by their TTL or DEAD because their payload
        cannot be decoded."""

    @abstractmethod
    async def _wait_for_tasks(
        self, queues: list[str], timeout: float, stop: asyncio.Event | None
    ) -> None:
        """Returns when a task may be ready in ``queues`` (or a delayed one comes due), when
        ``stop`` is set, or after ``timeout`` seconds; uses the store's native wake-up. The
        subscription must be in place before the first ``await``: an enqueue that lands between
        the caller's empty claim and this wait must still wake it."""

    @abstractmethod
    async def _heartbeat(
        self, claims: list[tuple[str, str]], lease: float, now: datetime
    ) -> dict[str, HeartbeatStatus]: ...

    @abstractmethod
    async def _complete(
        self,
        completions: list[Completion],
        now: datetime,
        result_storage: BaseResultStorage | None,
    ) -> list[bool]:
        """RUNNING with this claim -> SUCCESS, one flag per completion (False: stale claim).
        ``result_storage`` is given only when :meth:`stores_results_with` said True: the results
        are then written in the same transaction/script, encoded with *its* serializer, and its
        waiters are woken."""

    @abstractmethod
    async def _fail(self, failure: Failure, now: datetime) -> Task | None:
        """RUNNING with this claim -> PENDING at ``retry_at`` (refused, hence DEAD, when no
        attempt is left), DEAD or CANCELLED, with the error recorded. None when the claim is
        stale. Atomic: the attempts check and the change are one step."""

    @abstractmethod
    async def _release(self, task_id: str, claim: str, now: datetime) -> Task | None:
        """RUNNING with this claim -> PENDING, ready now, ``attempts`` back down by one."""

    @abstractmethod
    async def _cancel(self, task_id: str, now: datetime) -> Task | None:
        """PENDING/WAITING -> CANCELLED; RUNNING -> cancel_requested. Returns the task after the
        change (unchanged if final), or None if unknown."""

    @abstractmethod
    async def _promote(self, task_ids: list[str], now: datetime) -> list[Task]:
        """WAITING -> PENDING (ready at once, or at its ``eta``), waking claimers. Ids that are
        not WAITING (any more) are left alone. Returns the tasks that moved, after the change."""

    @abstractmethod
    async def _cancel_waiting(self, items: list[tuple[str, str]], now: datetime) -> list[Task]:
        """WAITING -> CANCELLED for each (id, reason): ``error_type`` 'DependencyFailed',
        ``error_message`` the reason. Ids not WAITING are left alone. Returns the tasks that
        moved, after the change."""

    @abstractmethod
    async def _dependents(self, task_ids: list[str]) -> list[Task]:
        """The WAITING tasks whose ``depends_on`` names any of ``task_ids``. This runs after
        every acknowledgement batch: a backend answers from an index, and at no cost when
        nothing waits on the tasks (the completion can tell, see the SQLite/Redis backends)."""

    @abstractmethod
    async def _get_tasks(self, task_ids: list[str]) -> dict[str, Task]:
        """Many tasks by id (unknown ids are absent), in one round trip."""

    @abstractmethod
    async def _save_worker(self, worker_id: str, payload: bytes, expires_at: datetime) -> None:
        """Upserts a worker's record, kept until ``expires_at`` unless saved again."""

    @abstractmethod
    async def _list_workers(self, now: datetime) -> list[bytes]:
        """The payloads of workers whose record has not expired at ``now``."""

    @abstractmethod
    async def _delete_worker(self, worker_id: str) -> bool: ...

    @abstractmethod
    async def _requeue(self, task_id: str, reset_attempts: bool, now: datetime) -> Task | None: ...

    @abstractmethod
    async def _recover_expired(self, now: datetime) -> list[Task]: ...

    @abstractmethod
    async def _expire(self, now: datetime) -> list[Task]: ...

    @abstractmethod
    async def _get_task(self, task_id: str) -> Task | None: ...

    @abstractmethod
    async def _list_tasks(
        self, queue: str | None, status: TaskStatus | None, limit: int, offset: int
    ) -> list[Task]: ...

    @abstractmethod
    async def _queue_size(self, queue: str) -> int: ...

    @abstractmethod
    async def _stats(self) -> dict[str, dict[str, int]]: ...

    @abstractmethod
    async def _purge(self, queue: str) -> int: ...

    @abstractmethod
    async def _save_schedule(self, schedule: Schedule, payload: bytes) -> None: ...

    @abstractmethod
    async def _get_schedule(self, schedule_id: str) -> Schedule | None: ...

    @abstractmethod
    async def _list_schedules(self, state: ScheduleState | None) -> list[Schedule]: ...

    @abstractmethod
    async def _update_schedule(
        self,
        schedule_id: str,
        changes: dict[str, Any],
        *,
        expected_next_run_at: datetime | None = None,
        check_next_run: bool = False,
    ) -> bool: ...

    @abstractmethod
    async def _delete_schedule(self, schedule_id: str) -> bool: ...

    @abstractmethod
    async def _due_schedules(self, now: datetime) -> list[Schedule]: ...


# ---------------------------------------------------------------------------------------------
class BaseResultStorage(Component):
    """Where results wait for ``get_result``; results with a TTL expire."""

    async def set(self, result: TaskResult) -> None:
        await self.set_many([result])

    async def set_many(self, results: Sequence[TaskResult]) -> None:
        items = [(r, self.serializer.encode_result(r)) for r in results]
        if items:
            await self._ensure()
            await self._set_many(items)

    async def get(self, task_id: str) -> TaskResult | None:
        await self._ensure()
        result = await self._get(task_id)
        if result is not None and result.is_expired():
            return None
        return result

    async def get_many(self, task_ids: Sequence[str]) -> dict[str, TaskResult]:
        await self._ensure()
        found = await self._get_many(list(task_ids))
        now = utcnow()
        return {k: v for k, v in found.items() if not v.is_expired(now)}

    async def wait(self, task_id: str, timeout: float | None = None) -> TaskResult | None:
        """The result once it exists; waits up to ``timeout`` seconds (None: without limit, 0: not
        at all) on the store's native wake-up. A result that exists but has expired (its
        ``result_ttl`` ran out) ends the wait at once with None: it will not come back."""
        await self._ensure()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            result = await self._get(task_id)
            if result is not None:
                return None if result.is_expired() else result
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            await self._wait_for(task_id, remaining)

    async def get_latest(self, schedule_id: str) -> TaskResult | None:
        await self._ensure()
        return await self._get_latest(schedule_id)

    async def delete(self, task_id: str) -> bool:
        await self._ensure()
        return await self._delete(task_id)

    async def cleanup(self) -> int:
        """Deletes expired results; returns how many."""
        await self._ensure()
        return await self._cleanup(utcnow())

    @abstractmethod
    async def _set_many(self, items: list[tuple[TaskResult, bytes]]) -> None: ...

    @abstractmethod
    async def _get(self, task_id: str) -> TaskResult | None: ...

    async def _get_many(self, task_ids: list[str]) -> dict[str, TaskResult]:
        found = {}
        for task_id in task_ids:
            result = await self._get(task_id)
            if result is not None:
                found[task_id] = result
        return found

    @abstractmethod
    async def _wait_for(self, task_id: str, timeout: float | None) -> None:
        """Returns when a result for ``task_id`` may exist, or after ``timeout``; must not miss a
        result written between the caller's last ``get`` and this call."""

    @abstractmethod
    async def _get_latest(self, schedule_id: str) -> TaskResult | None: ...

    @abstractmethod
    async def _delete(self, task_id: str) -> bool: ...

    @abstractmethod
    async def _cleanup(self, now: datetime) -> int: ...


# ---------------------------------------------------------------------------------------------
class BaseEventStorage(Component):
    """Where lifecycle events are kept and queried."""

    async def log_event(self, event: TaskEvent) -> None:
        await self.log_events([event])

    async def log_events(self, events: Sequence[TaskEvent]) -> None:
        if events:
            await self._ensure()
            await self._log_events(list(events))

    async def get_events(
        self,
        task_id: str | None = None,
        event_type: EventType | str | Sequence[EventType | str] | None = None,
        queue: str | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
        *,
        schedule_id: str | None = None,
        descending: bool = False,
    ) -> list[TaskEvent]:
        """Events matching every given filter, oldest first (``descending=True``: newest first).
        ``start_time`` is inclusive, ``end_time`` exclusive."""
        types: list[EventType] | None
        if event_type is None:
            types = None
        elif isinstance(event_type, EventType | str):
            types = [EventType(event_type)]
        else:
            types = [EventType(t) for t in event_type]
        if limit < 0 or offset < 0:
            raise ValueError(f"limit and offset must be >= 0, got {limit!r}, {offset!r}")
        await self._ensure()
        return await self._get_events(
            EventQuery(
                task_id=task_id,
                event_types=types,
                queue=queue,
                schedule_id=schedule_id,
                start_time=as_utc(start_time) if start_time else None,
                end_time=as_utc(end_time) if end_time else None,
                limit=limit,
                offset=offset,
                descending=descending,
            )
        )

    async def cleanup_old_events(self, before: datetime) -> int:
        """Deletes events older than ``before``; returns how many."""
        await self._ensure()
        return await self._cleanup_old_events(as_utc(before))

    @abstractmethod
    async def _log_events(self, events: list[TaskEvent]) -> None: ...

    @abstractmethod
    async def _get_events(self, query: EventQuery) -> list[TaskEvent]: ...

    @abstractmethod
    async def _cleanup_old_events(self, before: datetime) -> int: ...


class EventQuery(msgspec.Struct, kw_only=True):
    task_id: str | None = None
    event_types: list[EventType] | None = None
    queue: str | None = None
    schedule_id: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    limit: int = 100
    offset: int = 0
    descending: bool = False

    def matches(self, event: TaskEvent) -> bool:
        """The filter in Python, for stores that cannot push it down (memory, plain files)."""
        return (
            (self.task_id is None or event.task_id == self.task_id)
            and (self.event_types is None or event.event_type in self.event_types)
            and (self.queue is None or event.queue_name == self.queue)
            and (self.schedule_id is None or event.schedule_id == self.schedule_id)
            and (self.start_time is None or event.timestamp >= self.start_time)
            and (self.end_time is None or event.timestamp < self.end_time)
        )


__all__ = [
    "BaseEventStorage",
    "BaseResultStorage",
    "BaseTaskQueue",
    "Completion",
    "Component",
    "EventQuery",
    "HeartbeatStatus",
    "dependency_verdict",
    "new_claim",
]
