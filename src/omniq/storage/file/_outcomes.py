"""Leases and outcomes of the file task queue: each one a compare-and-set of the state object
(``_state.py``), so two workers never both own or settle a task."""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from omniq.models.task import Task, TaskStatus
from omniq.storage.base import BaseResultStorage, Completion, Failure, HeartbeatStatus
from omniq.storage.file._archive import FileArchive
from omniq.storage.file._records import REQUEUEABLE, finish
from omniq.storage.file._state import QueueState, Rec, Txn


class FileOutcomes(FileArchive):
    """Heartbeats, completion, failure, release, cancel, requeue, lease recovery, expiry and
    the dependency moves."""

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

    async def _set_progress(self, items: list[tuple[str, str, bytes]]) -> list[bool]:
        def op(state: QueueState, txn: Txn) -> list[bool]:
            done = []
            for task_id, claim, progress in items:
                rec = self._owned(state, task_id, claim)
                if rec is not None:
                    rec.progress = progress
                    txn.touch()
                done.append(rec is not None)
            return done

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
                finish(rec.task, TaskStatus.SUCCESS, txn.now)
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
            status = failure.status  # decided by the caller (omniq.queue.retry.decide)
            if status is TaskStatus.PENDING:
                task.status = TaskStatus.PENDING
                task.eta = failure.retry_at
                task.claim = task.lease_expires_at = None
                txn.woken.add(task.queue_name)
            else:
                finish(task, status, txn.now)
            txn.touch()
            return msgspec.structs.replace(task)

        return await self.log.run(op)

    async def _release(
        self, task_id: str, claim: str, now: datetime, eta: datetime | None = None
    ) -> Task | None:
        def op(state: QueueState, txn: Txn) -> Task | None:
            rec = self._owned(state, task_id, claim)
            if rec is None:
                return None
            task = rec.task
            txn.touch()
            if task.cancel_requested:
                task.error_type, task.error_message = "Cancelled", "cancelled while running"
                finish(task, TaskStatus.CANCELLED, txn.now)
                return msgspec.structs.replace(task)
            task.status = TaskStatus.PENDING
            task.attempts = max(0, task.attempts - 1)
            task.claim = task.lease_expires_at = task.worker_id = task.started_at = None
            task.cancel_requested = False
            if eta is not None:
                task.eta = eta
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
                finish(task, TaskStatus.CANCELLED, txn.now)
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
            if rec is None or rec.task.status not in REQUEUEABLE:
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
                    finish(task, TaskStatus.DEAD, txn.now)
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
                    finish(task, TaskStatus.EXPIRED, txn.now)
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
                finish(rec.task, TaskStatus.CANCELLED, txn.now)
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
