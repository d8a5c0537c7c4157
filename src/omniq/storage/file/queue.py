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
from omniq.models.task import Task, TaskStatus
from omniq.storage.base import (
    BaseResultStorage,
    RecordLimits,
    SupportsDependencies,
    SupportsProgress,
    SupportsPurge,
    SupportsSchedules,
    SupportsWorkerRegistry,
    decoded_state,
    new_claim,
    undecodable_kind,
)
from omniq.storage.file._common import Backoff, local_wake, object_store
from omniq.storage.file._limits import FileLimits
from omniq.storage.file._outcomes import FileOutcomes
from omniq.storage.file._reads import FileReads
from omniq.storage.file._records import copy_rec, finish, laid
from omniq.storage.file._registry import FileRegistry
from omniq.storage.file._state import QueueState, Rec, StateLog, Txn


class AsyncFileQueue(
    FileOutcomes,
    FileReads,
    FileRegistry,
    FileLimits,
    SupportsProgress,
    RecordLimits,
    SupportsDependencies,
    SupportsSchedules,
    SupportsWorkerRegistry,
    SupportsPurge,
):
    """Tasks as objects in a folder or a bucket, claimed by compare-and-set. The primitives
    live in the parts: ``_outcomes.py`` (leases, outcomes, dependencies), ``_reads.py``,
    ``_archive.py`` and ``_registry.py`` (workers, schedules); this module enqueues and claims."""

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

    def server_label(self) -> str:
        return f"file store {self.base_dir}"

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
                        finish(task, TaskStatus.EXPIRED, now)
                        ended.append(msgspec.structs.replace(task))
                        continue
                    task.status = TaskStatus.RUNNING
                    task.attempts += 1
                    task.worker_id = worker_id
                    task.claim = new_claim(worker_id, task.attempts)
                    task.started_at = now
                    task.lease_expires_at = lease_until
                    task.cancel_requested = False
                    claimed.append(copy_rec(rec))
            return claimed, ended

        recs, ended = await self.log.run(op)
        if not recs:
            return [], ended
        self._backoff.reset()
        payloads = await self._payloads(recs)
        claimed: list[Task] = []
        poison: list[tuple[Rec, SerializationError]] = []
        for rec in recs:
            payload = payloads.get(rec.task.id)
            try:
                if payload is None:
                    raise SerializationError(f"the payload of task {rec.task.id!r} is missing")
                claimed.append(decoded_state(self.serializer, payload, rec.task.id, laid(rec)))
            except SerializationError as exc:
                poison.append((rec, exc))
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
    def _poison_op(poison: list[tuple[Rec, SerializationError]]) -> Any:
        def op(state: QueueState, txn: Txn) -> list[Task]:
            dead = []
            for claimed, exc in poison:
                rec = state.tasks.get(claimed.task.id)
                if rec is None or rec.task.claim != claimed.task.claim:
                    continue
                rec.task.error_type, rec.task.error_message = undecodable_kind(exc), str(exc)
                finish(rec.task, TaskStatus.DEAD, txn.now)
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

    async def _health(self) -> dict[str, Any]:
        state = await self.log.run(lambda state, txn: len(state.tasks))
        return {"location": self.base_dir, "tasks_in_state": state}


class FileQueue(SyncWrapper, async_class=AsyncFileQueue):
    """Blocking API of :class:`AsyncFileQueue`."""


__all__ = ["AsyncFileQueue", "FileQueue"]
