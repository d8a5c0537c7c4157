"""The file task queue: a local folder, ``memory://`` or a bucket (S3, Azure Blob, GCS).

Layout under ``<base_dir>/<project>/``: ``state`` (the queue, one object changed only by
compare-and-set, see ``_state.py``), ``payloads/<uuid>`` (the arguments of one enqueue batch,
immutable, deleted when no task points into it), ``done/<task id>`` (succeeded tasks moved out of
the state once more than ``keep_finished`` have piled up) and ``workers/<id>`` (the registry).

Idle workers poll with a bounded back-off (``poll_interval`` up to ``max_poll_interval``, one
conditional read each); an enqueue from the same process wakes them at once.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import msgspec

from omniq._sync import SyncWrapper
from omniq.exceptions import SerializationError
from omniq.models.schedule import Schedule, ScheduleState
from omniq.models.task import Task, TaskStatus, copy_state
from omniq.storage.base import (
    BaseResultStorage,
    Completion,
    Failure,
    HeartbeatStatus,
    SupportsDependencies,
    SupportsPurge,
    SupportsSchedules,
    SupportsWorkerRegistry,
    decoded_or_shell,
    new_claim,
)
from omniq.storage.file._common import Backoff, local_wake, object_store
from omniq.storage.file._state import QueueState, Rec, StateLog, Txn

_REQUEUEABLE = (TaskStatus.DEAD, TaskStatus.CANCELLED, TaskStatus.EXPIRED, TaskStatus.FAILED)
_REC = msgspec.msgpack.Decoder(Rec)
_ENC = msgspec.msgpack.Encoder()


def _copy(rec: Rec) -> Rec:
    return Rec(msgspec.structs.replace(rec.task), rec.seq, rec.blob, rec.start, rec.end)


def _finish(task: Task, status: TaskStatus, now: datetime) -> None:
    task.status = status
    task.finished_at = now
    task.lease_expires_at = None


def _unref(state: QueueState, txn: Txn, rec: Rec) -> None:
    left = state.blobs.get(rec.blob, 0) - 1
    if left > 0:
        state.blobs[rec.blob] = left
    else:
        state.blobs.pop(rec.blob, None)
        txn.freed.add(rec.blob)


class AsyncFileQueue(
    SupportsDependencies, SupportsSchedules, SupportsWorkerRegistry, SupportsPurge
):
    """Tasks as objects in a folder or a bucket, claimed by compare-and-set."""

    backend_name = "file"
    is_local = True

    def __init__(
        self,
        *,
        base_dir: str | os.PathLike[str] | None = None,
        storage_options: Mapping[str, Any] | None = None,
        keep_finished: int = 1000,
        poll_interval: float = 0.05,
        max_poll_interval: float = 1.0,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.objects = object_store(base_dir, storage_options)
        if self.objects.location.local_root is not None:
            # no key configured: the folder's own key signs its payloads (made on first use)
            self.serializer.use_local_key(self.objects.location.local_root / ".omniq.key")
        self.base_dir = self.objects.shown
        self._where = (base_dir, storage_options)
        if keep_finished < 0:
            raise ValueError(f"keep_finished must be >= 0, got {keep_finished!r}")
        if poll_interval <= 0 or max_poll_interval <= 0:
            raise ValueError(
                f"poll intervals must be positive, got {poll_interval!r}, {max_poll_interval!r}"
            )
        self.keep_finished = keep_finished
        self._root = self.objects.key(self.project_name)
        self._wake = local_wake(self.objects)
        self._topic = f"{self._root}/queue:"
        self.log = StateLog(self.objects, f"{self._root}/state", self._after_commit)
        self._backoff = Backoff(poll_interval, max_poll_interval)
        self._archiving = False
        self._background: set[asyncio.Task[Any]] = set()

    def __repr__(self) -> str:
        return f"AsyncFileQueue(base_dir={self.base_dir!r}, project_name={self.project_name!r})"

    def create_result_storage(self) -> BaseResultStorage:
        from omniq.storage.file.stores import AsyncFileResultStorage

        return AsyncFileResultStorage(
            base_dir=self._where[0],
            storage_options=self._where[1],
            project_name=self.project_name,
            serializer=self.serializer,
        )

    # -- plumbing --------------------------------------------------------------------------
    async def _connect(self) -> None:
        await self.log.open()

    async def _close(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def _after_commit(self, txn: Txn) -> None:
        if txn.woken:
            self._wake.notify({self._topic + q for q in txn.woken})
        if txn.freed:
            keys = [f"{self._root}/payloads/{b}" for b in txn.freed]
            self._spawn(self.objects.delete(keys))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _payloads(self, recs: list[Rec]) -> dict[str, bytes]:
        """The payload bytes of ``recs`` (one ranged read per payload object)."""
        by_blob: dict[str, list[Rec]] = {}
        for rec in recs:
            by_blob.setdefault(rec.blob, []).append(rec)

        async def one(blob: str, group: list[Rec]) -> list[tuple[str, bytes]]:
            got = await self.objects.read_ranges(
                f"{self._root}/payloads/{blob}", [(r.start, r.end) for r in group]
            )
            if got is None:
                return []
            return [(r.task.id, data) for r, data in zip(group, got, strict=True)]

        found: dict[str, bytes] = {}
        for pairs in await asyncio.gather(*(one(b, g) for b, g in by_blob.items())):
            found.update(pairs)
        return found

    async def _views(self, recs: list[Rec]) -> list[Task]:
        """What readers see: the decoded payload with the state laid over it, or the stored
        state alone when the payload cannot be read or decoded."""
        payloads = await self._payloads(recs)
        out = []
        for rec in recs:
            payload = payloads.get(rec.task.id)
            shell = rec.task
            task = (
                decoded_or_shell(self.serializer, payload, lambda s=shell: s, rec.task.id)  # type: ignore[misc]
                if payload is not None
                else shell
            )
            out.append(copy_state(rec.task, task))
        return out

    # -- enqueue and claim -----------------------------------------------------------------
    async def _enqueue(self, items: list[tuple[Task, bytes]]) -> list[bool]:
        blob = uuid.uuid4().hex
        spans = []
        offset = 0
        for _, payload in items:
            spans.append((offset, offset + len(payload)))
            offset += len(payload)
        await self.objects.write(f"{self._root}/payloads/{blob}", b"".join(p for _, p in items))
        stripped = [
            msgspec.structs.replace(task, args=(), kwargs={}, func_obj=None, callbacks={})
            for task, _ in items
        ]

        def op(state: QueueState, txn: Txn) -> list[bool]:
            created = []
            refs = 0
            for task, (start, end) in zip(stripped, spans, strict=True):
                if task.id in state.tasks:
                    created.append(False)
                    continue
                state.seq += 1
                state.tasks[task.id] = Rec(
                    msgspec.structs.replace(task), state.seq, blob, start, end
                )
                refs += 1
                if task.status is TaskStatus.PENDING:
                    txn.woken.add(task.queue_name)
                created.append(True)
            if refs:
                state.blobs[blob] = state.blobs.get(blob, 0) + refs
                txn.touch()
            return created

        created = await self.log.run(op)
        if not any(created):
            await self.objects.delete([f"{self._root}/payloads/{blob}"])
        return created

    async def _claim(
        self, queues: list[str], limit: int, worker_id: str | None, lease: float, now: datetime
    ) -> tuple[list[Task], list[Task]]:
        def op(state: QueueState, txn: Txn) -> tuple[list[Rec], list[Task]]:
            now = txn.now
            lease_until = now + timedelta(seconds=lease)
            claimed: list[Rec] = []
            ended: list[Task] = []
            for queue in queues:
                if len(claimed) >= limit:
                    break
                ready = sorted(
                    (
                        r
                        for r in state.tasks.values()
                        if r.task.queue_name == queue
                        and r.task.status is TaskStatus.PENDING
                        and (r.task.eta is None or r.task.eta <= now)
                    ),
                    key=lambda r: (-r.task.priority, r.task.ready_at, r.seq),
                )
                for rec in ready:
                    if len(claimed) >= limit:
                        break
                    task = rec.task
                    txn.touch()
                    if task.expires_at is not None and task.expires_at <= now:
                        task.error_type, task.error_message = (
                            "TaskExpired",
                            "expired before it started",
                        )
                        _finish(task, TaskStatus.EXPIRED, now)
                        ended.append(msgspec.structs.replace(task))
                        continue
                    task.status = TaskStatus.RUNNING
                    task.attempts += 1
                    task.worker_id = worker_id
                    task.claim = new_claim(worker_id, task.attempts)
                    task.started_at = now
                    task.lease_expires_at = lease_until
                    task.cancel_requested = False
                    claimed.append(_copy(rec))
            return claimed, ended

        recs, ended = await self.log.run(op)
        if not recs:
            return [], ended
        self._backoff.reset()
        payloads = await self._payloads(recs)
        claimed: list[Task] = []
        poison: list[tuple[Rec, str]] = []
        for rec in recs:
            payload = payloads.get(rec.task.id)
            try:
                if payload is None:
                    raise SerializationError(f"the payload of task {rec.task.id!r} is missing")
                task = self.serializer.decode_task(payload, rec.task.id)
                claimed.append(copy_state(rec.task, task))
            except SerializationError as exc:
                poison.append((rec, str(exc)))
        if poison:
            ended.extend(await self.log.run(self._poison_op(poison)))
            # the poison took places of the batch: the claimer carries on with healthy tasks
            more, more_ended = await self._claim(
                queues, limit - len(claimed), worker_id, lease, now
            )
            claimed.extend(more)
            ended.extend(more_ended)
        return claimed, ended

    @staticmethod
    def _poison_op(poison: list[tuple[Rec, str]]) -> Any:
        def op(state: QueueState, txn: Txn) -> list[Task]:
            dead = []
            for claimed, reason in poison:
                rec = state.tasks.get(claimed.task.id)
                if rec is None or rec.task.claim != claimed.task.claim:
                    continue
                rec.task.error_type, rec.task.error_message = "SerializationError", reason
                _finish(rec.task, TaskStatus.DEAD, txn.now)
                txn.touch()
                dead.append(msgspec.structs.replace(rec.task))
            return dead

        return op

    async def _wait_for_tasks(
        self, queues: list[str], timeout: float, stop: asyncio.Event | None
    ) -> None:
        wait = min(timeout, self._backoff.next())
        state = self.log.cached
        if state is not None:
            wanted = set(queues)
            etas = [
                r.task.eta
                for r in state.tasks.values()
                if r.task.eta is not None
                and r.task.status is TaskStatus.PENDING
                and r.task.queue_name in wanted
            ]
            if etas:
                due = (min(etas) - datetime.now(min(etas).tzinfo)).total_seconds()
                wait = min(wait, max(0.0, due) + 0.001)
        await self._wake.wait([self._topic + q for q in queues], wait, stop)

    # -- leases and outcomes ---------------------------------------------------------------
    async def _heartbeat(
        self, claims: list[tuple[str, str]], lease: float, now: datetime
    ) -> dict[str, HeartbeatStatus]:
        def op(state: QueueState, txn: Txn) -> dict[str, HeartbeatStatus]:
            until = txn.now + timedelta(seconds=lease)
            out: dict[str, HeartbeatStatus] = {}
            for task_id, claim in claims:
                rec = state.tasks.get(task_id)
                if (
                    rec is None
                    or rec.task.status is not TaskStatus.RUNNING
                    or rec.task.claim != claim
                ):
                    out[task_id] = HeartbeatStatus.LOST
                    continue
                rec.task.lease_expires_at = until
                txn.touch()
                out[task_id] = (
                    HeartbeatStatus.CANCEL if rec.task.cancel_requested else HeartbeatStatus.OK
                )
            return out

        return await self.log.run(op)

    @staticmethod
    def _owned(state: QueueState, task_id: str, claim: str) -> Rec | None:
        rec = state.tasks.get(task_id)
        if rec is None or rec.task.status is not TaskStatus.RUNNING or rec.task.claim != claim:
            return None
        return rec

    async def _complete(
        self,
        completions: list[Completion],
        now: datetime,
        result_storage: BaseResultStorage | None,
    ) -> list[bool]:
        def op(state: QueueState, txn: Txn) -> list[bool]:
            acks = []
            for c in completions:
                rec = self._owned(state, c.task_id, c.claim)
                if rec is None:
                    acks.append(False)
                    continue
                _finish(rec.task, TaskStatus.SUCCESS, txn.now)
                txn.touch()
                acks.append(True)
            return acks

        acks = await self.log.run(op)
        await self._maybe_archive()
        return acks

    async def _fail(self, failure: Failure, now: datetime) -> Task | None:
        def op(state: QueueState, txn: Txn) -> Task | None:
            rec = self._owned(state, failure.task_id, failure.claim)
            if rec is None:
                return None
            task = rec.task
            task.error_type = failure.error_type
            task.error_message = failure.error_message
            task.error_traceback = failure.error_traceback
            status = failure.status
            if status is TaskStatus.PENDING and task.attempts >= task.max_attempts:
                status = TaskStatus.DEAD  # out of attempts: refused here, atomically
            if status is TaskStatus.PENDING:
                task.status = TaskStatus.PENDING
                task.eta = failure.retry_at
                task.claim = task.lease_expires_at = None
                txn.woken.add(task.queue_name)
            else:
                _finish(task, status, txn.now)
            txn.touch()
            return msgspec.structs.replace(task)

        return await self.log.run(op)

    async def _release(self, task_id: str, claim: str, now: datetime) -> Task | None:
        def op(state: QueueState, txn: Txn) -> Task | None:
            rec = self._owned(state, task_id, claim)
            if rec is None:
                return None
            task = rec.task
            txn.touch()
            if task.cancel_requested:
                task.error_type, task.error_message = "Cancelled", "cancelled while running"
                _finish(task, TaskStatus.CANCELLED, txn.now)
                return msgspec.structs.replace(task)
            task.status = TaskStatus.PENDING
            task.attempts = max(0, task.attempts - 1)
            task.claim = task.lease_expires_at = task.worker_id = task.started_at = None
            task.cancel_requested = False
            txn.woken.add(task.queue_name)
            return msgspec.structs.replace(task)

        return await self.log.run(op)

    async def _cancel(self, task_id: str, now: datetime) -> Task | None:
        def op(state: QueueState, txn: Txn) -> Task | None:
            rec = state.tasks.get(task_id)
            if rec is None:
                return None
            task = rec.task
            if task.status in (TaskStatus.PENDING, TaskStatus.WAITING):
                task.error_type, task.error_message = "Cancelled", "cancelled before it started"
                _finish(task, TaskStatus.CANCELLED, txn.now)
                txn.touch()
            elif task.status is TaskStatus.RUNNING and not task.cancel_requested:
                task.cancel_requested = True
                txn.touch()
            return msgspec.structs.replace(task)

        found = await self.log.run(op)
        if found is None:
            return await self._archived(task_id)
        return found

    async def _requeue(self, task_id: str, reset_attempts: bool, now: datetime) -> Task | None:
        def op(state: QueueState, txn: Txn) -> Task | None:
            rec = state.tasks.get(task_id)
            if rec is None or rec.task.status not in _REQUEUEABLE:
                return None
            task = rec.task
            task.status = TaskStatus.PENDING
            if reset_attempts:
                task.attempts = 0
            task.eta = task.expires_at = None
            task.finished_at = task.claim = task.worker_id = task.lease_expires_at = None
            task.error_type = task.error_message = task.error_traceback = None
            task.cancel_requested = False
            txn.touch()
            txn.woken.add(task.queue_name)
            return msgspec.structs.replace(task)

        return await self.log.run(op)

    async def _recover_expired(self, now: datetime) -> list[Task]:
        def op(state: QueueState, txn: Txn) -> list[Task]:
            recovered = []
            for rec in state.tasks.values():
                task = rec.task
                if (
                    task.status is not TaskStatus.RUNNING
                    or task.lease_expires_at is None
                    or task.lease_expires_at > txn.now
                ):
                    continue
                if task.attempts >= task.max_attempts:
                    task.error_type = "LeaseExpired"
                    task.error_message = (
                        f"lease expired on attempt {task.attempts} of {task.max_attempts}"
                    )
                    _finish(task, TaskStatus.DEAD, txn.now)
                else:
                    task.status = TaskStatus.PENDING
                    task.eta = None
                    task.claim = task.lease_expires_at = None
                    txn.woken.add(task.queue_name)
                txn.touch()
                recovered.append(msgspec.structs.replace(task))
            return recovered

        return await self.log.run(op)

    async def _expire(self, now: datetime) -> list[Task]:
        def op(state: QueueState, txn: Txn) -> list[Task]:
            expired = []
            for rec in state.tasks.values():
                task = rec.task
                if (
                    task.status in (TaskStatus.PENDING, TaskStatus.WAITING)
                    and task.expires_at is not None
                    and task.expires_at <= txn.now
                ):
                    task.error_type, task.error_message = "TaskExpired", "expired before it started"
                    _finish(task, TaskStatus.EXPIRED, txn.now)
                    txn.touch()
                    expired.append(msgspec.structs.replace(task))
            return expired

        return await self.log.run(op)

    # -- dependencies ----------------------------------------------------------------------
    async def _promote(self, task_ids: list[str], now: datetime) -> list[Task]:
        def op(state: QueueState, txn: Txn) -> list[Task]:
            moved = []
            for task_id in task_ids:
                rec = state.tasks.get(task_id)
                if rec is None or rec.task.status is not TaskStatus.WAITING:
                    continue
                rec.task.status = TaskStatus.PENDING
                txn.touch()
                txn.woken.add(rec.task.queue_name)
                moved.append(msgspec.structs.replace(rec.task))
            return moved

        return await self.log.run(op)

    async def _cancel_waiting(self, items: list[tuple[str, str]], now: datetime) -> list[Task]:
        def op(state: QueueState, txn: Txn) -> list[Task]:
            cancelled = []
            for task_id, reason in items:
                rec = state.tasks.get(task_id)
                if rec is None or rec.task.status is not TaskStatus.WAITING:
                    continue
                rec.task.error_type, rec.task.error_message = "DependencyFailed", reason
                _finish(rec.task, TaskStatus.CANCELLED, txn.now)
                txn.touch()
                cancelled.append(msgspec.structs.replace(rec.task))
            return cancelled

        return await self.log.run(op)

    async def _dependents(self, task_ids: list[str]) -> list[Task]:
        wanted = set(task_ids)

        def op(state: QueueState, txn: Txn) -> list[Task]:
            return [
                msgspec.structs.replace(r.task)
                for r in state.tasks.values()
                if r.task.status is TaskStatus.WAITING and wanted.intersection(r.task.depends_on)
            ]

        return await self.log.run(op)

    # -- finished tasks move out of the state ----------------------------------------------
    async def _maybe_archive(self) -> None:
        """Succeeded tasks beyond ``keep_finished`` move to ``done/<id>`` objects (written
        before the state drops them), so the state object stays small however long the queue
        runs. Failed, cancelled and expired ones stay: they can be requeued."""
        state = self.log.cached
        if self._archiving or state is None or len(state.tasks) <= self.keep_finished:
            return
        done = [r for r in state.tasks.values() if r.task.status is TaskStatus.SUCCESS]
        excess = len(done) - self.keep_finished
        if excess < max(50, self.keep_finished // 4):
            return  # move them in batches, not one write per completion
        self._archiving = True
        try:
            done.sort(key=lambda r: (r.task.finished_at or r.task.created_at, r.seq))
            moving = [_copy(r) for r in done[:excess]]
            await asyncio.gather(
                *(
                    self.objects.write(f"{self._root}/done/{r.task.id}", _ENC.encode(r))
                    for r in moving
                )
            )
            ids = {r.task.id for r in moving}

            def op(state: QueueState, txn: Txn) -> int:
                moved = 0
                for task_id in ids:
                    rec = state.tasks.get(task_id)
                    if rec is None or rec.task.status is not TaskStatus.SUCCESS:
                        continue
                    del state.tasks[task_id]
                    _unref(state, txn, rec)
                    counts = state.archived.setdefault(rec.task.queue_name, {})
                    counts[TaskStatus.SUCCESS.value] = counts.get(TaskStatus.SUCCESS.value, 0) + 1
                    moved += 1
                if moved:
                    txn.touch()
                return moved

            await self.log.run(op)
        finally:
            self._archiving = False

    async def _archived(self, task_id: str) -> Task | None:
        found = await self.objects.read(f"{self._root}/done/{task_id}")
        if found is None:
            return None
        return (await self._views([_REC.decode(found[0])]))[0]

    # -- reading ---------------------------------------------------------------------------
    async def _get_tasks(self, task_ids: list[str]) -> dict[str, Task]:
        def op(state: QueueState, txn: Txn) -> list[Rec]:
            return [_copy(r) for i in task_ids if (r := state.tasks.get(i)) is not None]

        recs = await self.log.run(op)
        found = {t.id: t for t in await self._views(recs)}
        missing = [i for i in task_ids if i not in found]
        if missing:
            for task in await asyncio.gather(*(self._archived(i) for i in missing)):
                if task is not None:
                    found[task.id] = task
        return found

    async def _list_tasks(
        self, queue: str | None, status: TaskStatus | None, limit: int, offset: int
    ) -> list[Task]:
        def op(state: QueueState, txn: Txn) -> list[Rec]:
            return sorted(
                (
                    _copy(r)
                    for r in state.tasks.values()
                    if (queue is None or r.task.queue_name == queue)
                    and (status is None or r.task.status is status)
                ),
                key=lambda r: r.seq,
            )

        recs = await self.log.run(op)
        page = recs[offset : offset + limit]
        if len(page) < limit and status in (None, TaskStatus.SUCCESS):
            page.extend(
                await self._list_archived(queue, max(0, offset - len(recs)), limit - len(page))
            )
        return await self._views(page)

    async def _list_archived(self, queue: str | None, offset: int, limit: int) -> list[Rec]:
        if limit <= 0:
            return []
        listed = sorted(o["path"] for o in await self.objects.list(f"{self._root}/done/"))
        out: list[Rec] = []
        skipped = 0
        for path in listed:
            found = await self.objects.read(path)
            if found is None:
                continue
            rec = _REC.decode(found[0])
            if queue is not None and rec.task.queue_name != queue:
                continue
            if skipped < offset:
                skipped += 1
                continue
            out.append(rec)
            if len(out) >= limit:
                break
        return out

    async def _queue_size(self, queue: str) -> int:
        def op(state: QueueState, txn: Txn) -> int:
            return sum(
                1
                for r in state.tasks.values()
                if r.task.queue_name == queue and r.task.status is TaskStatus.PENDING
            )

        return await self.log.run(op)

    async def _stats(self) -> dict[str, dict[str, int]]:
        def op(state: QueueState, txn: Txn) -> dict[str, dict[str, int]]:
            out: dict[str, dict[str, int]] = {}
            for queue, counts in state.archived.items():
                for name, n in counts.items():
                    if n:
                        out.setdefault(queue, {})[name] = n
            for r in state.tasks.values():
                counts = out.setdefault(r.task.queue_name, {})
                counts[r.task.status.value] = counts.get(r.task.status.value, 0) + 1
            return out

        return await self.log.run(op)

    async def _purge(self, queue: str) -> int:
        def op(state: QueueState, txn: Txn) -> int:
            doomed = [
                r
                for r in state.tasks.values()
                if r.task.queue_name == queue
                and r.task.status in (TaskStatus.PENDING, TaskStatus.WAITING)
            ]
            for rec in doomed:
                del state.tasks[rec.task.id]
                _unref(state, txn, rec)
            if doomed:
                txn.touch()
            return len(doomed)

        return await self.log.run(op)

    # -- worker registry: one small object per worker, out of the queue's hot object ---------
    async def _save_worker(self, worker_id: str, payload: bytes, expires_at: datetime) -> None:
        await self.objects.write(
            f"{self._root}/workers/{worker_id}", _ENC.encode((expires_at, payload))
        )

    async def _list_workers(self, now: datetime) -> list[bytes]:
        listed = await self.objects.list(f"{self._root}/workers/")
        found = await asyncio.gather(*(self.objects.read(o["path"]) for o in listed))
        alive: list[bytes] = []
        stale: list[str] = []
        for obj, got in zip(listed, found, strict=True):
            if got is None:
                continue
            expires_at, payload = msgspec.msgpack.decode(got[0], type=tuple[datetime, bytes])
            if expires_at <= now:
                stale.append(obj["path"])
            else:
                alive.append(payload)
        await self.objects.delete(stale)
        return alive

    async def _delete_worker(self, worker_id: str) -> bool:
        key = f"{self._root}/workers/{worker_id}"
        if await self.objects.read(key) is None:
            return False
        await self.objects.delete([key])
        return True

    # -- schedules: in the state object, so claiming a due one is the same compare-and-set --
    async def _save_schedule(self, schedule: Schedule, payload: bytes) -> None:
        def op(state: QueueState, txn: Txn) -> None:
            state.schedules[schedule.id] = payload
            txn.touch()

        await self.log.run(op)

    async def _get_schedule(self, schedule_id: str) -> Schedule | None:
        def op(state: QueueState, txn: Txn) -> bytes | None:
            return state.schedules.get(schedule_id)

        payload = await self.log.run(op)
        return None if payload is None else self.serializer.decode_schedule(payload)

    async def _list_schedules(self, state: ScheduleState | None) -> list[Schedule]:
        def op(st: QueueState, txn: Txn) -> list[bytes]:
            return list(st.schedules.values())

        found = [self.serializer.decode_schedule(p) for p in await self.log.run(op)]
        return [s for s in found if state is None or s.state is state]

    async def _update_schedule(
        self,
        schedule_id: str,
        changes: dict[str, Any],
        *,
        expected_next_run_at: datetime | None = None,
        check_next_run: bool = False,
    ) -> bool:
        serializer = self.serializer

        def op(state: QueueState, txn: Txn) -> bool:
            payload = state.schedules.get(schedule_id)
            if payload is None:
                return False
            schedule = serializer.decode_schedule(payload)
            if check_next_run and schedule.next_run_at != expected_next_run_at:
                return False
            for key, value in changes.items():
                setattr(schedule, key, value)
            state.schedules[schedule_id] = serializer.encode_schedule(schedule)
            txn.touch()
            return True

        return await self.log.run(op)

    async def _delete_schedule(self, schedule_id: str) -> bool:
        def op(state: QueueState, txn: Txn) -> bool:
            if state.schedules.pop(schedule_id, None) is None:
                return False
            txn.touch()
            return True

        return await self.log.run(op)

    async def _health(self) -> dict[str, Any]:
        state = await self.log.run(lambda state, txn: len(state.tasks))
        return {"location": self.base_dir, "tasks_in_state": state}


class FileQueue(SyncWrapper, async_class=AsyncFileQueue):
    """Blocking API of :class:`AsyncFileQueue`."""


__all__ = ["AsyncFileQueue", "FileQueue"]
