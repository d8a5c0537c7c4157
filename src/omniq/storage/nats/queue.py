"""The NATS task queue: tasks on a JetStream work-queue stream, their state in a KV bucket.

Layout, for project P (names in :class:`omniq.storage.nats._conn.Names`):

- stream ``OMNIQ_P`` (work-queue retention), subject ``omniq.P.q.<queue>`` per named queue; one
  durable pull consumer per queue, shared by every worker, so each message goes to one worker at
  a time (the queue-group semantics the seeds ask for). A message is a *hint*: task id,
  priority and ready time.
- KV bucket ``OMNIQ_P_TASKS``: ``t.<id>`` the task record (payload and state, see ``_records``),
  ``d.<id>`` the ids waiting on a task, ``s.<id>`` schedules, ``w.<id>`` workers.

The parts: ``_store`` (records, compare-and-set, acknowledgements, hints), ``_claims`` (claims
and the recovery of dead holders' claims), ``_outcomes`` (what becomes of a claimed task),
``_dependencies``, ``_registry`` (schedules and workers); this module stores and lists tasks.
Every request goes through ``_pipe``, many at a time.

A claim fetches hints (up to the free capacity plus a small window, in the order the worker
names its queues), orders them by priority, ready time and enqueue order, and moves each record
to RUNNING with a compare-and-set; the message stays unacknowledged, and the record keeps its ack
subject, so that any process can finish it: ``+ACK`` on success, ``-NAK`` with a delay for a
retry (the server holds it until it is due), ``+TERM`` when it is dead, ``+WPI`` on heartbeat.
The consumer's AckWait is the lease on the server side: a worker that dies stops renewing it, the
server delivers the message again, and the next claimer (or ``recover_expired`` in any process),
seeing a newer delivery of the record's own message, counts the lost attempt (DEAD when none is
left). Delayed tasks are held the same way as retries: a hint that is not due yet is nak'ed with
the delay left.
"""

from __future__ import annotations

from typing import Any

from omniq._sync import SyncWrapper
from omniq.models.task import Task, TaskStatus
from omniq.storage.base import (
    RecordLimits,
    SupportsDependencies,
    SupportsProgress,
    SupportsPurge,
    SupportsSchedules,
    SupportsWorkerRegistry,
)
from omniq.storage.base.listing import cursor_gone
from omniq.storage.nats._dependencies import Dependencies
from omniq.storage.nats._limits import Limits
from omniq.storage.nats._outcomes import EXPIRING_MARK, Outcomes
from omniq.storage.nats._records import RECORD_ENCODER, Record
from omniq.storage.nats._registry import Registry
from omniq.storage.nats._store import task_key


class AsyncNATSQueue(
    Outcomes,
    Dependencies,
    Registry,
    Limits,
    SupportsProgress,
    RecordLimits,
    SupportsDependencies,
    SupportsSchedules,
    SupportsWorkerRegistry,
    SupportsPurge,
):
    """Tasks on NATS JetStream (seeds 003/004); see the module docstring for the layout."""

    _expiring_marked = False

    def __repr__(self) -> str:
        return f"AsyncNATSQueue(servers={self.where!r}, project_name={self.project_name!r})"

    async def _health(self) -> dict[str, Any]:
        assert self.nc is not None
        info = await self.call(
            "reading stream info", lambda: self.jetstream.stream_info(self.names.stream)
        )
        return {
            "servers": self.where,
            "server_version": _version(self.nc.connected_server_version),
            "stream": self.names.stream,
            "messages": info.state.messages,
        }

    # -- enqueue ---------------------------------------------------------------------------
    async def _enqueue(self, items: list[tuple[Task, bytes]]) -> list[bool]:
        """Every record created at once, then every hint published at once (each carrying its
        record as created: its first claim writes without a read): two round trips a batch."""
        records = [(task, Record.of(task, payload)) for task, payload in items]
        values = [RECORD_ENCODER.encode(record) for _, record in records]
        async with self.guard("enqueueing"):
            created = await self._kv.create_many(
                [
                    (task_key(task.id), value)
                    for (task, _), value in zip(records, values, strict=True)
                ]
            )
            await self._hints(
                [
                    (task.id, record, (value, rev))
                    for (task, record), value, rev in zip(records, values, created, strict=True)
                    if rev is not None and task.status is TaskStatus.PENDING
                ]
            )
            new = [task for (task, _), rev in zip(records, created, strict=True) if rev is not None]
            waiting = [t for t in new if t.status is TaskStatus.WAITING]
            if waiting:
                await self._index_waiters(waiting)
            if not self._expiring_marked and any(t.expires_at is not None for t in new):
                await self._mark(EXPIRING_MARK)
                self._expiring_marked = True
        return [rev is not None for rev in created]

    # -- reading ---------------------------------------------------------------------------
    async def _get_tasks(self, task_ids: list[str]) -> dict[str, Task]:
        async with self.guard("reading tasks"):
            found = await self._read_many(task_ids)
        return {i: self._view(i, r) for i, r in zip(task_ids, found, strict=True) if r}

    async def _list_tasks(
        self,
        queue: str | None,
        status: TaskStatus | None,
        limit: int,
        offset: int,
        after: str | None = None,
        descending: bool = False,
    ) -> list[Task]:
        records = await self._records()
        if descending:
            records.reverse()
        if after is not None:
            ids = [i for i, _ in records]
            if after not in ids:
                raise cursor_gone(after)
            records = records[ids.index(after) + 1 :]
        matches = [
            (i, r)
            for i, r in records
            if (queue is None or r.queue == queue) and (status is None or r.status == status.value)
        ]
        return [self._view(i, r) for i, r in matches[offset : offset + limit]]

    async def _queue_size(self, queue: str) -> int:
        return sum(
            1 for _, r in await self._records() if r.queue == queue and r.status == "pending"
        )

    async def _stats(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for _, r in await self._records():
            by_status = counts.setdefault(r.queue, {})
            by_status[r.status] = by_status.get(r.status, 0) + 1
        return counts

    async def _purge(self, queue: str | None, statuses: frozenset[TaskStatus]) -> int:
        doomed = [
            i
            for i, r in await self._records()
            if (queue is None or r.queue == queue) and r.status in statuses
        ]
        async with self.guard("purging"):
            # their hints stay in the stream and are dropped when delivered (no record)
            await self._kv.delete_many([(task_key(i), None) for i in doomed])
        return len(doomed)


def _version(version: Any) -> str:
    """``2.9.10`` (the driver's ``str`` of it is ``<nats server v2.9.10>``)."""
    text = f"{version.major}.{version.minor}.{version.patch}"
    return f"{text}-{version.prerelease}" if version.prerelease else text


class NATSQueue(SyncWrapper, async_class=AsyncNATSQueue):
    """Blocking API of :class:`AsyncNATSQueue`."""


__all__ = ["AsyncNATSQueue", "NATSQueue"]
