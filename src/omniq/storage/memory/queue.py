"""The memory task queue: a heap per queue, futures for wake-ups (ARCHITECTURE 12.4).

It keeps encoded payloads, not live objects, so a task behaves exactly as on a real backend (the
enqueuer cannot mutate arguments after the fact, and every payload passes the serializer). Every
primitive runs without an ``await`` inside, which makes each one atomic on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import msgspec

from omniq._sync import SyncWrapper
from omniq.exceptions import SerializationError
from omniq.models.schedule import Schedule, ScheduleState
from omniq.models.task import Task, TaskStatus, copy_state
from omniq.storage._waiters import QueueWaiters
from omniq.storage.base import (
    BaseResultStorage,
    Completion,
    Failure,
    HeartbeatStatus,
    SupportsCancelSignal,
    SupportsDependencies,
    SupportsProgress,
    SupportsPurge,
    SupportsSchedules,
    SupportsWorkerRegistry,
    decoded_or_shell,
    lay_progress,
    new_claim,
)
from omniq.storage.base.listing import cursor_gone
from omniq.storage.memory._limits import InProcessLimits
from omniq.storage.memory.stores import AsyncMemoryResultStorage

_FINAL = (TaskStatus.SUCCESS, TaskStatus.DEAD, TaskStatus.CANCELLED, TaskStatus.EXPIRED)
_REQUEUEABLE = (TaskStatus.DEAD, TaskStatus.CANCELLED, TaskStatus.EXPIRED, TaskStatus.FAILED)


class _Entry:
    __slots__ = ("gen", "payload", "progress", "seq", "task")

    def __init__(self, task: Task, payload: bytes, seq: int) -> None:
        self.task = task  # state of record; args travel in `payload`
        self.payload = payload
        self.seq = seq
        self.gen = 0  # bumped whenever the task is (re)queued: older heap items become stale
        self.progress: bytes | None = None  # the encoded progress last reported


class AsyncMemoryQueue(
    InProcessLimits,
    SupportsCancelSignal,
    SupportsProgress,
    SupportsDependencies,
    SupportsSchedules,
    SupportsWorkerRegistry,
    SupportsPurge,
):
    """Tasks in this process only: the fastest backend, for tests and single-process apps."""

    backend_name = "memory"
    is_local = True

    def __init__(
        self, *, name: str | None = None, max_finished: int = 100_000, **options: Any
    ) -> None:
        super().__init__(**options)
        self.name = name
        self.max_finished = max_finished
        self._tasks: dict[str, _Entry] = {}
        self._ready: dict[str, list[tuple[int, float, int, int, str]]] = {}
        self._delayed: dict[str, list[tuple[float, int, int, str]]] = {}
        self._running: dict[str, _Entry] = {}
        self._finished: deque[str] = deque()
        self._schedules: dict[str, Schedule] = {}
        self._workers: dict[str, tuple[datetime, bytes]] = {}
        # dependency id -> ids of the WAITING tasks that name it
        self._waiting_on: dict[str, set[str]] = {}
        # tasks by queue and status, kept with every change so sizes and stats cost O(queues)
        self._counts: dict[str, Counter[TaskStatus]] = {}
        self._seq = 0
        self._waiters = QueueWaiters()
        self._cancel_listeners: set[Callable[[str], None]] = set()

    def create_result_storage(self) -> BaseResultStorage:
        return AsyncMemoryResultStorage(project_name=self.project_name, serializer=self.serializer)

    def __repr__(self) -> str:
        return f"AsyncMemoryQueue(project_name={self.project_name!r}, queues={self.queues!r})"

    # -- internals -------------------------------------------------------------------------
    def _set_status(self, task: Task, status: TaskStatus) -> None:
        """Every status change goes through here, so the counters never drift."""
        counts = self._counts.setdefault(task.queue_name, Counter())
        counts[task.status] -= 1
        counts[status] += 1
        task.status = status

    def _delete(self, task_id: str) -> None:
        entry = self._tasks.pop(task_id)
        self._counts[entry.task.queue_name][entry.task.status] -= 1

    def _push(self, entry: _Entry, now: datetime) -> None:
        task = entry.task
        entry.gen += 1
        if task.eta is not None and task.eta > now:
            heapq.heappush(
                self._delayed.setdefault(task.queue_name, []),
                (task.eta.timestamp(), entry.seq, entry.gen, task.id),
            )
            # claimers already waiting computed their deadline without this task: wake them so
            # they wait again until its eta instead of sleeping through it
            self._waiters.notify(task.queue_name)
        else:
            heapq.heappush(
                self._ready.setdefault(task.queue_name, []),
                (-task.priority, task.ready_at.timestamp(), entry.seq, entry.gen, task.id),
            )
            self._waiters.notify(task.queue_name)

    def _promote_due(self, queue: str, now_ts: float) -> None:
        delayed = self._delayed.get(queue)
        if not delayed:
            return
        ready = self._ready.setdefault(queue, [])
        while delayed and delayed[0][0] <= now_ts:
            eta_ts, seq, gen, task_id = heapq.heappop(delayed)
            entry = self._tasks.get(task_id)
            if entry is None or entry.gen != gen or entry.task.status is not TaskStatus.PENDING:
                continue
            heapq.heappush(ready, (-entry.task.priority, eta_ts, seq, gen, task_id))

    def _snapshot(self, entry: _Entry) -> Task:
        """A private copy for the caller: decoded payload with the current state laid over it."""
        task = self.serializer.decode_task(entry.payload, entry.task.id)
        copy_state(entry.task, task)
        return lay_progress(self.serializer, task, entry.progress)

    def _view(self, entry: _Entry) -> Task:
        """What readers (get_task, list_tasks) see: a task whose payload cannot be decoded (a
        poison task, already DEAD) is still shown, with its state and without its arguments."""
        task = decoded_or_shell(
            self.serializer,
            entry.payload,
            lambda: msgspec.structs.replace(entry.task),
            entry.task.id,
        )
        copy_state(entry.task, task)
        return lay_progress(self.serializer, task, entry.progress)

    def _finish(self, entry: _Entry, status: TaskStatus, now: datetime) -> None:
        task = entry.task
        self._set_status(task, status)
        task.finished_at = now
        task.lease_expires_at = None
        self._running.pop(task.id, None)
        self._finished.append(task.id)
        while len(self._finished) > self.max_finished:
            old = self._finished.popleft()
            old_entry = self._tasks.get(old)
            if old_entry is not None and old_entry.task.status in _FINAL:
                self._delete(old)

    def _own(self, task_id: str, claim: str) -> _Entry | None:
        entry = self._running.get(task_id)
        if entry is None or entry.task.claim != claim:
            return None
        return entry

    # -- primitives ------------------------------------------------------------------------
    async def _enqueue(self, items: list[tuple[Task, bytes]]) -> list[bool]:
        created = []
        for task, payload in items:
            if task.id in self._tasks:
                created.append(False)
                continue
            self._seq += 1
            entry = _Entry(
                msgspec.structs.replace(task, args=(), kwargs={}, func_obj=None), payload, self._seq
            )
            self._tasks[task.id] = entry
            self._counts.setdefault(task.queue_name, Counter())[entry.task.status] += 1
            if task.status is TaskStatus.WAITING:
                for dep in task.depends_on:
                    self._waiting_on.setdefault(dep, set()).add(task.id)
            else:
                self._push(entry, task.created_at)
            created.append(True)
        return created

    async def _claim(
        self, queues: list[str], limit: int, worker_id: str | None, lease: float, now: datetime
    ) -> tuple[list[Task], list[Task]]:
        claimed: list[Task] = []
        ended: list[Task] = []
        now_ts = now.timestamp()
        lease_until = now + timedelta(seconds=lease)
        for queue in queues:
            self._promote_due(queue, now_ts)
            heap = self._ready.get(queue)
            while heap and len(claimed) < limit:
                _, _, _, gen, task_id = heapq.heappop(heap)
                entry = self._tasks.get(task_id)
                if entry is None or entry.gen != gen or entry.task.status is not TaskStatus.PENDING:
                    continue
                task = entry.task
                if task.expires_at is not None and task.expires_at <= now:
                    self._finish(entry, TaskStatus.EXPIRED, now)
                    task.error_type, task.error_message = "TaskExpired", "expired before it started"
                    ended.append(msgspec.structs.replace(task))
                    continue
                self._set_status(task, TaskStatus.RUNNING)
                task.attempts += 1
                task.worker_id = worker_id
                task.claim = new_claim(worker_id, task.attempts)
                task.started_at = now
                task.lease_expires_at = lease_until
                task.cancel_requested = False
                try:
                    snapshot = self._snapshot(entry)
                except SerializationError as exc:
                    # poison payload: dead at once, with the reason, and the worker carries on
                    task.error_type, task.error_message = "SerializationError", str(exc)
                    self._finish(entry, TaskStatus.DEAD, now)
                    ended.append(msgspec.structs.replace(task))
                    continue
                self._running[task_id] = entry
                claimed.append(snapshot)
            if len(claimed) >= limit:
                break
        return claimed, ended

    async def _wait_for_tasks(
        self, queues: list[str], timeout: float, stop: asyncio.Event | None
    ) -> None:
        wall = time.time()
        next_due = min(
            (heap[0][0] for q in queues if (heap := self._delayed.get(q))),
            default=None,
        )
        if next_due is not None:
            timeout = min(timeout, max(0.0, next_due - wall) + 0.001)
        await self._waiters.wait(queues, timeout, stop)

    async def _heartbeat(
        self, claims: list[tuple[str, str]], lease: float, now: datetime
    ) -> dict[str, HeartbeatStatus]:
        out: dict[str, HeartbeatStatus] = {}
        until = now + timedelta(seconds=lease)
        for task_id, claim in claims:
            entry = self._own(task_id, claim)
            if entry is None:
                out[task_id] = HeartbeatStatus.LOST
                continue
            entry.task.lease_expires_at = until
            out[task_id] = (
                HeartbeatStatus.CANCEL if entry.task.cancel_requested else HeartbeatStatus.OK
            )
        return out

    async def _set_progress(self, items: list[tuple[str, str, bytes]]) -> list[bool]:
        done = []
        for task_id, claim, raw in items:
            entry = self._own(task_id, claim)
            if entry is not None:
                entry.progress = raw
            done.append(entry is not None)
        return done

    async def _complete(
        self,
        completions: list[Completion],
        now: datetime,
        result_storage: BaseResultStorage | None,
    ) -> list[bool]:
        acks = []
        for c in completions:
            entry = self._own(c.task_id, c.claim)
            if entry is None:
                acks.append(False)
                continue
            self._finish(entry, TaskStatus.SUCCESS, now)
            acks.append(True)
        return acks

    async def _fail(self, failure: Failure, now: datetime) -> Task | None:
        entry = self._own(failure.task_id, failure.claim)
        if entry is None:
            return None
        task = entry.task
        task.error_type, task.error_message, task.error_traceback = (
            failure.error_type,
            failure.error_message,
            failure.error_traceback,
        )
        status = failure.status  # decided by the caller (omniq.queue.retry.decide)
        if status is TaskStatus.PENDING:
            self._running.pop(task.id, None)
            self._set_status(task, TaskStatus.PENDING)
            task.eta = failure.retry_at
            task.claim = task.lease_expires_at = None
            self._push(entry, now)
        else:
            self._finish(entry, status, now)
        return msgspec.structs.replace(task)

    async def _release(
        self, task_id: str, claim: str, now: datetime, eta: datetime | None = None
    ) -> Task | None:
        entry = self._own(task_id, claim)
        if entry is None:
            return None
        task = entry.task
        if task.cancel_requested:
            # handing back must not lose a cancellation: the next claimer would never hear of it
            task.error_type, task.error_message = "Cancelled", "cancelled while running"
            self._finish(entry, TaskStatus.CANCELLED, now)
            return msgspec.structs.replace(task)
        self._running.pop(task_id, None)
        self._set_status(task, TaskStatus.PENDING)
        task.attempts = max(0, task.attempts - 1)
        task.claim = task.lease_expires_at = task.worker_id = task.started_at = None
        task.cancel_requested = False
        if eta is not None:
            task.eta = eta
        self._push(entry, now)
        return msgspec.structs.replace(task)

    async def _cancel(self, task_id: str, now: datetime) -> Task | None:
        entry = self._tasks.get(task_id)
        if entry is None:
            return None
        task = entry.task
        if task.status in (TaskStatus.PENDING, TaskStatus.WAITING):
            task.error_type, task.error_message = "Cancelled", "cancelled before it started"
            self._finish(entry, TaskStatus.CANCELLED, now)
        elif task.status is TaskStatus.RUNNING:
            task.cancel_requested = True
        return msgspec.structs.replace(task)

    async def _promote(self, task_ids: list[str], now: datetime) -> list[Task]:
        promoted = []
        for task_id in task_ids:
            entry = self._tasks.get(task_id)
            if entry is None or entry.task.status is not TaskStatus.WAITING:
                continue
            self._set_status(entry.task, TaskStatus.PENDING)
            self._push(entry, now)
            promoted.append(msgspec.structs.replace(entry.task))
        return promoted

    async def _cancel_waiting(self, items: list[tuple[str, str]], now: datetime) -> list[Task]:
        cancelled = []
        for task_id, reason in items:
            entry = self._tasks.get(task_id)
            if entry is None or entry.task.status is not TaskStatus.WAITING:
                continue
            entry.task.error_type, entry.task.error_message = "DependencyFailed", reason
            self._finish(entry, TaskStatus.CANCELLED, now)
            cancelled.append(msgspec.structs.replace(entry.task))
        return cancelled

    async def _dependents(self, task_ids: list[str]) -> list[Task]:
        found: dict[str, Task] = {}
        for dep in task_ids:
            waiting = self._waiting_on.pop(dep, None)
            if not waiting:
                continue
            for task_id in waiting:
                entry = self._tasks.get(task_id)
                if entry is not None and entry.task.status is TaskStatus.WAITING:
                    found[task_id] = self._view(entry)
        return list(found.values())

    async def _get_tasks(self, task_ids: list[str]) -> dict[str, Task]:
        return {i: self._view(e) for i in task_ids if (e := self._tasks.get(i)) is not None}

    async def _save_worker(self, worker_id: str, payload: bytes, expires_at: datetime) -> None:
        self._workers[worker_id] = (expires_at, payload)

    async def _list_workers(self, now: datetime) -> list[bytes]:
        for worker_id in [w for w, (exp, _) in self._workers.items() if exp <= now]:
            del self._workers[worker_id]
        return [payload for _, payload in self._workers.values()]

    async def _delete_worker(self, worker_id: str) -> bool:
        return self._workers.pop(worker_id, None) is not None

    async def _requeue(self, task_id: str, reset_attempts: bool, now: datetime) -> Task | None:
        entry = self._tasks.get(task_id)
        if entry is None or entry.task.status not in _REQUEUEABLE:
            return None
        task = entry.task
        self._set_status(task, TaskStatus.PENDING)
        if reset_attempts:
            task.attempts = 0
        task.eta = None
        task.expires_at = None
        task.finished_at = task.claim = task.worker_id = task.lease_expires_at = None
        task.error_type = task.error_message = task.error_traceback = None
        task.cancel_requested = False
        self._push(entry, now)
        return msgspec.structs.replace(task)

    async def _recover_expired(self, now: datetime) -> list[Task]:
        recovered = []
        for task_id, entry in list(self._running.items()):
            task = entry.task
            if task.lease_expires_at is None or task.lease_expires_at > now:
                continue
            if task.attempts >= task.max_attempts:
                task.error_type = "LeaseExpired"
                task.error_message = (
                    f"lease expired on attempt {task.attempts} of {task.max_attempts}"
                )
                self._finish(entry, TaskStatus.DEAD, now)
            else:
                del self._running[task_id]
                self._set_status(task, TaskStatus.PENDING)
                task.eta = None
                task.claim = task.lease_expires_at = None
                self._push(entry, now)
            recovered.append(msgspec.structs.replace(task))
        return recovered

    async def _expire(self, now: datetime) -> list[Task]:
        expired = []
        for entry in list(self._tasks.values()):
            task = entry.task
            if (
                task.status in (TaskStatus.PENDING, TaskStatus.WAITING)
                and task.expires_at is not None
                and task.expires_at <= now
            ):
                task.error_type, task.error_message = "TaskExpired", "expired before it started"
                self._finish(entry, TaskStatus.EXPIRED, now)
                expired.append(msgspec.structs.replace(task))
        return expired

    async def _get_task(self, task_id: str) -> Task | None:
        entry = self._tasks.get(task_id)
        return None if entry is None else self._view(entry)

    async def _list_tasks(
        self,
        queue: str | None,
        status: TaskStatus | None,
        limit: int,
        offset: int,
        after: str | None = None,
        descending: bool = False,
    ) -> list[Task]:
        # the dict keeps insertion order, which is enqueue order (seq)
        entries = reversed(self._tasks.values()) if descending else iter(self._tasks.values())
        if after is not None:
            mark = self._tasks.get(after)
            if mark is None:
                raise cursor_gone(after)
            entries = itertools.dropwhile(lambda e: e is not mark, entries)
            next(entries, None)  # the cursor itself
        matches = (
            e
            for e in entries
            if (queue is None or e.task.queue_name == queue)
            and (status is None or e.task.status is status)
        )
        out: list[Task] = []
        for i, entry in enumerate(matches):
            if i < offset:
                continue
            if len(out) >= limit:
                break
            out.append(self._view(entry))
        return out

    async def _queue_size(self, queue: str) -> int:
        counts = self._counts.get(queue)
        return counts[TaskStatus.PENDING] if counts else 0

    async def _stats(self) -> dict[str, dict[str, int]]:
        return {
            queue: {status.value: n for status, n in counts.items() if n}
            for queue, counts in self._counts.items()
            if any(counts.values())
        }

    async def _purge(self, queue: str | None, statuses: frozenset[TaskStatus]) -> int:
        doomed = [
            task_id
            for task_id, e in self._tasks.items()
            if (queue is None or e.task.queue_name == queue) and e.task.status in statuses
        ]
        for task_id in doomed:
            self._delete(task_id)
        return len(doomed)

    # -- schedules -------------------------------------------------------------------------
    async def _save_schedule(self, schedule: Schedule, payload: bytes) -> None:
        self._schedules[schedule.id] = self.serializer.decode_schedule(payload)

    async def _get_schedule(self, schedule_id: str) -> Schedule | None:
        schedule = self._schedules.get(schedule_id)
        return None if schedule is None else msgspec.structs.replace(schedule)

    async def _list_schedules(self, state: ScheduleState | None) -> list[Schedule]:
        return [
            msgspec.structs.replace(s)
            for s in self._schedules.values()
            if state is None or s.state is state
        ]

    async def _update_schedule(
        self,
        schedule_id: str,
        changes: dict[str, Any],
        *,
        expected_next_run_at: datetime | None = None,
        check_next_run: bool = False,
    ) -> bool:
        schedule = self._schedules.get(schedule_id)
        if schedule is None:
            return False
        if check_next_run and schedule.next_run_at != expected_next_run_at:
            return False
        for key, value in changes.items():
            setattr(schedule, key, value)
        return True

    async def _delete_schedule(self, schedule_id: str) -> bool:
        return self._schedules.pop(schedule_id, None) is not None

    async def _due_schedules(self, now: datetime) -> list[Schedule]:
        return [
            msgspec.structs.replace(s)
            for s in self._schedules.values()
            if s.state is ScheduleState.ACTIVE
            and s.next_run_at is not None
            and s.next_run_at <= now
        ]

    async def _health(self) -> dict[str, Any]:
        return {"tasks": len(self._tasks), "running": len(self._running)}

    # -- cancel signal: in-process callbacks ----------------------------------------------
    async def _signal_cancel(self, task_id: str) -> None:
        for deliver in list(self._cancel_listeners):
            deliver(task_id)

    @contextlib.asynccontextmanager
    async def _listen_cancels(self, deliver: Callable[[str], None]) -> AsyncIterator[None]:
        self._cancel_listeners.add(deliver)
        try:
            yield
        finally:
            self._cancel_listeners.discard(deliver)


class MemoryQueue(SyncWrapper, async_class=AsyncMemoryQueue):
    """Blocking API of :class:`AsyncMemoryQueue`."""


__all__ = ["AsyncMemoryQueue", "MemoryQueue"]
