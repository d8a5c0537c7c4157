"""The NATS task queue: tasks on a JetStream work-queue stream, their state in a KV bucket.

Layout, for project P (names in :class:`omniq.storage.nats._conn.Names`):

- stream ``OMNIQ_P`` (work-queue retention), subject ``omniq.P.q.<queue>`` per named queue; one
  durable pull consumer per queue, shared by every worker, so each message goes to one worker at
  a time (the queue-group semantics the seeds ask for). A message is a *hint*: task id,
  priority and ready time.
- KV bucket ``OMNIQ_P_TASKS``: ``t.<id>`` the task record (payload and state, see ``_records``),
  ``d.<id>`` the ids waiting on a task, ``s.<id>`` schedules, ``w.<id>`` workers.

A claim fetches hints (up to the free capacity plus a small window, in the order the worker
names its queues), orders them by priority, ready time and enqueue order, and moves each record
to RUNNING with a compare-and-set; the message stays unacknowledged, and the record keeps its ack
subject, so that any process can finish it: ``+ACK`` on success, ``-NAK`` with a delay for a
retry (the server holds it until it is due), ``+TERM`` when it is dead, ``+WPI`` on heartbeat.
The consumer's AckWait is the lease on the server side: a worker that dies stops renewing it, the
server delivers the message again, and the next claimer, seeing a newer delivery of the record's
own message, counts the lost attempt (DEAD when none is left). Delayed tasks are held the same way
as retries: a hint that is not due yet is nak'ed with the delay left.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import msgspec

from omniq._sync import SyncWrapper
from omniq.exceptions import ConfigError, SerializationError
from omniq.models.event import EventType
from omniq.models.schedule import Schedule, ScheduleState
from omniq.models.task import Task, TaskStatus
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
from omniq.storage.nats._conn import KeyValue, NATSComponent, key_token
from omniq.storage.nats._kv import cas, gather, kv_create, kv_delete, kv_get, kv_keys, kv_update
from omniq.storage.nats._puller import Delivery, Puller
from omniq.storage.nats._records import (
    HINT_DECODER,
    RECORD_DECODER,
    RECORD_ENCODER,
    Hint,
    Record,
    to_us,
)

#: Hints fetched beyond the free capacity, so that priority and ready time order the claim
#: across that many more waiting tasks than are claimed (JetStream itself delivers FIFO).
WINDOW = 16
#: Fetches one claim makes per queue at most while hints turn out not claimable.
MAX_ROUNDS = 8
_REQUEUEABLE = ("dead", "cancelled", "expired", "failed")
_FINAL = ("success", "dead", "cancelled", "expired")
_WAITING_MARK = "m.waiting"
_EXPIRING_MARK = "m.expiring"


def _task_key(task_id: str) -> str:
    return f"t.{key_token(task_id)}"


class AsyncNATSQueue(
    NATSComponent, SupportsDependencies, SupportsSchedules, SupportsWorkerRegistry, SupportsPurge
):
    """Tasks on NATS JetStream (seeds 003/004); see the module docstring for the layout."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._ack_wait = float(self.config.ack_wait or self.lease_timeout)
        if self._ack_wait < self.lease_timeout:
            raise ConfigError(
                f"ack_wait {self._ack_wait!r} is shorter than lease_timeout "
                f"{self.lease_timeout!r}: the server would hand running tasks to another worker"
            )
        self._consumers: dict[str, str] = {}
        self._bucket: KeyValue | None = None
        self._puller: Puller | None = None
        #: claims made by this process: task id -> (claim, lease deadline in µs)
        self._local: dict[str, tuple[str, int]] = {}
        #: the record as this process last wrote it, to skip a read on completion
        self._known: dict[str, tuple[bytes, int]] = {}
        self._waiting_seen = False
        self._waiting_checked = 0.0

    def __repr__(self) -> str:
        return f"AsyncNATSQueue(servers={self.where!r}, project_name={self.project_name!r})"

    def create_result_storage(self) -> BaseResultStorage:
        from omniq.storage.nats.results import AsyncNATSResultStorage

        return AsyncNATSResultStorage(
            project_name=self.project_name,
            serializer=self.serializer,
            **{k: getattr(self.config, k) for k in self._OPTIONS},
        )

    # -- connection ------------------------------------------------------------------------
    async def _prepare(self) -> None:
        await self.ensure_work_stream()
        self._bucket = await self.ensure_bucket(
            self.names.tasks_bucket, self.config.task_record_ttl
        )
        assert self.nc is not None
        self._puller = Puller(
            self.nc, self.names.stream, self._ack_wait / 2, self.config.request_timeout
        )
        self._consumers.clear()

    async def _close(self) -> None:
        if self._puller is not None:
            await self._puller.stop()
            self._puller = None
        await super()._close()

    async def _consumer(self, queue: str) -> str:
        name = self._consumers.get(queue)
        if name is None:
            name = await self.ensure_consumer(queue, self._ack_wait)
            self._consumers[queue] = name
        return name

    @property
    def _kv(self) -> KeyValue:
        if self._bucket is None:
            raise ConfigError("the NATS task queue is not connected")
        return self._bucket

    @property
    def puller(self) -> Puller:
        if self._puller is None:
            raise ConfigError("the NATS task queue is not connected")
        return self._puller

    async def _health(self) -> dict[str, Any]:
        assert self.nc is not None
        info = await self.call(
            "reading stream info", lambda: self.jetstream.stream_info(self.names.stream)
        )
        return {
            "servers": self.where,
            "server_version": str(self.nc.connected_server_version),
            "stream": self.names.stream,
            "messages": info.state.messages,
        }

    # -- records ---------------------------------------------------------------------------
    def _view(self, task_id: str, record: Record) -> Task:
        task = decoded_or_shell(
            self.serializer, record.payload, lambda: record.shell(task_id), task_id
        )
        return record.lay_over(task)

    async def _read(self, task_id: str) -> tuple[Record, int] | None:
        found = await kv_get(self._kv, _task_key(task_id))
        if found is None:
            return None
        return RECORD_DECODER.decode(found[0]), found[1]

    async def _change(
        self, task_id: str, change: Any, *, known: tuple[bytes, int] | None = None
    ) -> tuple[Record, Record | None] | None:
        """Compare-and-set on one task record: ``change(record)`` returns the record to write (it
        may mutate its argument) or None to leave it. Returns (before, after or None)."""
        before: list[Record] = []

        def apply(value: bytes) -> bytes | None:
            before[:] = [RECORD_DECODER.decode(value)]
            new = change(RECORD_DECODER.decode(value))
            return None if new is None else RECORD_ENCODER.encode(new)

        key = _task_key(task_id)
        async with self.guard(f"updating task {task_id}"):
            done = await cas(self._kv, key, apply, known)
        if done is None:
            return None
        _, written, revision = done
        after = None if written is None else RECORD_DECODER.decode(written)
        if written is not None and task_id in self._local:
            self._known[task_id] = (written, revision)
        return before[0], after

    async def _ack(self, reply: str | None, verb: bytes, *, confirm: bool = False) -> None:
        """Sends an acknowledgement verb. ``confirm`` waits for the server to have applied it:
        a message handed back (``-NAK``) must be claimable by the very next claim."""
        if not reply or self.nc is None:
            return
        async with self.guard("acknowledging"):
            if confirm:
                await self.nc.request(reply, verb, timeout=self.config.request_timeout)
            else:
                await self.nc.publish(reply, verb)

    async def _hint(
        self, record: Record, task_id: str, written: tuple[bytes, int] | None = None
    ) -> None:
        """Publishes the message that makes a PENDING task claimable (with the record as
        ``written`` at its revision, when the caller has it: see :class:`Hint`)."""
        hint = Hint(task_id, record.priority, record.eta_us or record.created_us)
        if written is not None:
            hint.record, hint.revision = written
        await self.jetstream.publish(
            self.names.queue_subject(record.queue),
            RECORD_ENCODER.encode(hint),
            stream=self.names.stream,
        )

    def _forget(self, task_id: str) -> None:
        self._local.pop(task_id, None)
        self._known.pop(task_id, None)

    # -- enqueue ---------------------------------------------------------------------------
    async def _enqueue(self, items: list[tuple[Task, bytes]]) -> list[bool]:
        records = [(task, RECORD_ENCODER.encode(Record.of(task, p))) for task, p in items]
        async with self.guard("enqueueing"):
            created = await gather(
                kv_create(self._kv, _task_key(task.id), value) for task, value in records
            )
            flags = [rev is not None for rev in created]
            await gather(
                self._hint(RECORD_DECODER.decode(value), task.id, (value, rev))
                for (task, value), rev in zip(records, created, strict=True)
                if rev is not None and task.status is TaskStatus.PENDING
            )
            new = [task for (task, _), ok in zip(items, flags, strict=True) if ok]
            waiting = [t for t in new if t.status is TaskStatus.WAITING]
            if waiting:
                await self._mark(_WAITING_MARK)
                self._waiting_seen = True
                for task in waiting:
                    await gather(self._index_waiter(dep, task.id) for dep in task.depends_on)
            if any(t.expires_at is not None for t in new):
                await self._mark(_EXPIRING_MARK)
        return flags

    async def _mark(self, key: str) -> None:
        if await kv_get(self._kv, key) is None:
            await self._kv.put(key, b"1", validate_keys=False)

    async def _index_waiter(self, dep: str, waiter: str) -> None:
        key = f"d.{key_token(dep)}"
        for _ in range(16):
            found = await kv_get(self._kv, key)
            if found is None:
                if await kv_create(self._kv, key, msgspec.msgpack.encode([waiter])) is not None:
                    return
                continue
            ids = msgspec.msgpack.decode(found[0], type=list[str])
            if waiter in ids:
                return
            ids.append(waiter)
            if await kv_update(self._kv, key, msgspec.msgpack.encode(ids), found[1]) is not None:
                return
        raise RuntimeError(f"the dependency index of {dep!r} kept changing")

    # -- claim -----------------------------------------------------------------------------
    async def _claim(
        self, queues: list[str], limit: int, worker_id: str | None, lease: float, now: datetime
    ) -> tuple[list[Task], list[Task]]:
        if lease > self._ack_wait:
            raise ConfigError(
                f"lease {lease!r} s is longer than the NATS consumer's ack_wait "
                f"{self._ack_wait!r} s: raise ack_wait (or lease_timeout) on the queue"
            )
        claimed: list[Task] = []
        ended: list[Task] = []
        now_us = to_us(now) or 0
        for queue in queues:
            consumer = await self._consumer(queue)
            # hints that end up not claimable (expired, poison, stale) are settled on the way;
            # fetch again while something was settled and the claim is not full
            for _ in range(MAX_ROUNDS):
                need = limit - len(claimed)
                if need <= 0:
                    break
                async with self.guard(f"fetching from queue {queue!r}"):
                    deliveries = await self.puller.fetch(consumer, need + WINDOW)
                if not deliveries:
                    break
                got, gone = await self._round(deliveries, need, worker_id, lease, now, now_us)
                claimed.extend(got)
                ended.extend(gone)
                if len(got) >= need:
                    break
            if len(claimed) >= limit:
                break
        return claimed, ended

    async def _round(
        self,
        deliveries: list[Delivery],
        need: int,
        worker_id: str | None,
        lease: float,
        now: datetime,
        now_us: int,
    ) -> tuple[list[Task], list[Task]]:
        ready: list[tuple[tuple[int, int, int], Delivery, Hint]] = []
        held: list[Any] = []
        for d in deliveries:
            try:
                hint = HINT_DECODER.decode(d.data)
            except msgspec.DecodeError:
                held.append(self._ack(d.reply, b"+TERM"))  # not ours: never again
                continue
            if hint.ready_us > now_us:  # delayed: the server holds it until it is due
                held.append(self._nak(d.reply, (hint.ready_us - now_us) / 1e6, confirm=False))
                continue
            ready.append(((-hint.priority, hint.ready_us, d.seq), d, hint))
        ready.sort(key=lambda item: item[0])
        chosen, rest = ready[:need], ready[need:]
        # the rest stays with this process, first in line for its next claim
        self.puller.give_back([d for _, d, _ in rest])
        await gather(held)
        outcomes = await gather(
            self._take(d, hint, worker_id, lease, now, now_us) for _, d, hint in chosen
        )
        claimed = [got for got, _ in outcomes if got is not None]
        ended = [gone for _, gone in outcomes if gone is not None]
        return claimed, ended

    async def _nak(self, reply: str, delay: float = 0.0, *, confirm: bool = True) -> None:
        payload = b"-NAK"
        if delay > 0:
            payload += b' {"delay": %d}' % int(delay * 1e9)
        await self._ack(reply, payload, confirm=confirm)

    async def _take(
        self,
        d: Delivery,
        hint: Hint,
        worker_id: str | None,
        lease: float,
        now: datetime,
        now_us: int,
    ) -> tuple[Task | None, Task | None]:
        """One hint: claim its task, or settle the hint. Returns (claimed, ended)."""
        task_id = hint.task_id
        key = _task_key(task_id)
        found = (hint.record, hint.revision) if hint.record is not None else None
        for _ in range(2):
            if found is None:
                async with self.guard(f"claiming task {task_id}"):
                    found = await kv_get(self._kv, key)
            if found is None:  # purged, or its record aged out: nothing to run
                await self._ack(d.reply, b"+ACK")
                return None, None
            outcome = await self._take_record(d, task_id, found, worker_id, lease, now_us)
            if outcome is not None:
                return outcome
            found = None  # the record moved on since the hint was written: read it
        await self._nak(d.reply, 0.05, confirm=False)  # still changing: look again soon
        return None, None

    async def _take_record(
        self,
        d: Delivery,
        task_id: str,
        found: tuple[bytes, int],
        worker_id: str | None,
        lease: float,
        now_us: int,
    ) -> tuple[Task | None, Task | None] | None:
        """Claims (or settles) with a compare-and-set on the record as ``found``; None when
        the record changed meanwhile."""
        key = _task_key(task_id)
        record = RECORD_DECODER.decode(found[0])
        status = record.status
        lost_lease = False
        if status == "running":
            if d.seq != record.seq:  # a duplicate hint of a task another message runs
                await self._ack(d.reply, b"+ACK")
                return None, None
            if d.delivered <= record.delivered:  # an old copy of the current delivery
                return None, None
            lost_lease = True  # the server delivered the record's own message again
        elif status != "pending":
            await self._ack(d.reply, b"+ACK")  # final or waiting: the hint is spent
            return None, None
        if status == "pending" and record.eta_us is not None and record.eta_us > now_us:
            await self._nak(d.reply, (record.eta_us - now_us) / 1e6)
            return None, None
        ending: str | None = None
        if lost_lease and record.attempts >= record.max_attempts:
            record.status, ending = "dead", "dead"
            record.error_type = "LeaseExpired"
            record.error_message = (
                f"lease expired on attempt {record.attempts} of {record.max_attempts}"
            )
        elif status == "pending" and record.expires_us is not None and record.expires_us <= now_us:
            record.status, ending = "expired", "expired"
            record.error_type, record.error_message = "TaskExpired", "expired before it started"
        task: Task | None = None
        if ending is None:
            try:
                task = self.serializer.decode_task(record.payload, task_id)
            except SerializationError as exc:
                record.status, ending = "dead", "poison"
                record.error_type, record.error_message = "SerializationError", str(exc)
        if ending is not None:
            record.finished_us = now_us
            record.claim = record.lease_us = None
        else:
            record.status = "running"
            record.attempts += 1
            record.worker_id = worker_id
            record.claim = new_claim(worker_id, record.attempts)
            record.started_us = now_us
            record.lease_us = now_us + int(lease * 1e6)
            record.cancel_requested = False
            record.eta_us = None
        record.seq, record.delivered, record.reply = d.seq, d.delivered, d.reply
        value = RECORD_ENCODER.encode(record)
        async with self.guard(f"claiming task {task_id}"):
            revision = await kv_update(self._kv, key, value, found[1])
        if revision is None:  # changed meanwhile (cancelled, claimed, retried)
            return None
        if lost_lease:
            view = self._view(task_id, record)
            self._emit(EventType.LEASE_EXPIRED, view)
            if ending is None:
                self._emit(EventType.RETRY, view, reason="lease expired")
        if ending is not None:
            await self._ack(d.reply, b"+TERM" if ending != "expired" else b"+ACK")
            view = self._view(task_id, record)
            if ending == "dead":
                # reported here: the base would call every ended task an undecodable payload
                self._emit(EventType.DEAD, view, reason="lease expired")
                await self._write_final_results([view])
                await self._settle_dependents([task_id])
                return None, None
            return None, view
        assert task is not None
        assert record.claim is not None
        assert record.lease_us is not None
        self._local[task_id] = (record.claim, record.lease_us)
        self._known[task_id] = (value, revision)
        return record.lay_over(task), None

    async def _wait_for_tasks(
        self, queues: list[str], timeout: float, stop: asyncio.Event | None
    ) -> None:
        consumers = [await self._consumer(q) for q in queues]
        async with self.guard("waiting for tasks"):
            await self.puller.wait(consumers, timeout, stop)

    # -- running tasks ---------------------------------------------------------------------
    async def _heartbeat(
        self, claims: list[tuple[str, str]], lease: float, now: datetime
    ) -> dict[str, HeartbeatStatus]:
        until = (to_us(now) or 0) + int(lease * 1e6)

        async def one(task_id: str, claim: str) -> HeartbeatStatus:
            def renew(r: Record) -> Record | None:
                if r.status != "running" or r.claim != claim:
                    return None
                r.lease_us = until
                return r

            done = await self._change(task_id, renew, known=self._known.get(task_id))
            if done is None or done[1] is None:
                return HeartbeatStatus.LOST
            after = done[1]
            await self._ack(after.reply, b"+WPI")  # the server-side lease starts again
            if task_id in self._local:
                self._local[task_id] = (claim, until)
            return HeartbeatStatus.CANCEL if after.cancel_requested else HeartbeatStatus.OK

        statuses = await gather(one(t, c) for t, c in claims)
        return dict(zip([t for t, _ in claims], statuses, strict=True))

    async def _complete(
        self,
        completions: list[Completion],
        now: datetime,
        result_storage: BaseResultStorage | None,
    ) -> list[bool]:
        now_us = to_us(now)

        async def one(c: Completion) -> bool:
            def finish(r: Record) -> Record | None:
                if r.status != "running" or r.claim != c.claim:
                    return None
                r.status, r.finished_us, r.lease_us = "success", now_us, None
                return r

            done = await self._change(c.task_id, finish, known=self._known.get(c.task_id))
            self._forget(c.task_id)
            if done is None or done[1] is None:
                return False
            await self._ack(done[1].reply, b"+ACK")
            return True

        return await gather(one(c) for c in completions)

    async def _fail(self, failure: Failure, now: datetime) -> Task | None:
        now_us = to_us(now) or 0
        retry_us = to_us(failure.retry_at)

        def change(r: Record) -> Record | None:
            if r.status != "running" or r.claim != failure.claim:
                return None
            r.error_type = failure.error_type
            r.error_message = failure.error_message
            r.error_traceback = failure.error_traceback
            status = failure.status.value
            if status == "pending" and r.attempts >= r.max_attempts:
                status = "dead"  # out of attempts: the retry is refused here, atomically
            r.status = status
            r.claim = r.lease_us = None
            if status == "pending":
                r.eta_us = retry_us
            else:
                r.finished_us = now_us
            return r

        done = await self._change(failure.task_id, change, known=self._known.get(failure.task_id))
        self._forget(failure.task_id)
        if done is None or done[1] is None:
            return None
        after = done[1]
        if after.status == "pending":
            await self._nak(after.reply or "", ((retry_us or now_us) - now_us) / 1e6)
        else:
            await self._ack(after.reply, b"+TERM")
        return self._view(failure.task_id, after)

    async def _release(self, task_id: str, claim: str, now: datetime) -> Task | None:
        now_us = to_us(now)

        def change(r: Record) -> Record | None:
            if r.status != "running" or r.claim != claim:
                return None
            if r.cancel_requested:
                # handing back must not lose a cancellation: the next claimer would never know
                r.status, r.finished_us = "cancelled", now_us
                r.error_type, r.error_message = "Cancelled", "cancelled while running"
            else:
                r.status = "pending"
                r.attempts = max(0, r.attempts - 1)
                r.worker_id = r.started_us = None
                r.cancel_requested = False
            r.claim = r.lease_us = None
            return r

        done = await self._change(task_id, change, known=self._known.get(task_id))
        self._forget(task_id)
        if done is None or done[1] is None:
            return None
        after = done[1]
        if after.status == "pending":
            await self._nak(after.reply or "")
        else:
            await self._ack(after.reply, b"+TERM")
        return self._view(task_id, after)

    async def _cancel(self, task_id: str, now: datetime) -> Task | None:
        now_us = to_us(now)

        def change(r: Record) -> Record | None:
            if r.status in ("pending", "waiting"):
                r.status, r.finished_us = "cancelled", now_us
                r.error_type, r.error_message = "Cancelled", "cancelled before it started"
                return r
            if r.status == "running" and not r.cancel_requested:
                r.cancel_requested = True
                return r
            return None

        done = await self._change(task_id, change)
        if done is None:
            return None
        before, after = done
        # a pending task's hint stays in the stream: whoever gets it sees the record final
        return self._view(task_id, after or before)

    async def _requeue(self, task_id: str, reset_attempts: bool, now: datetime) -> Task | None:
        def change(r: Record) -> Record | None:
            if r.status not in _REQUEUEABLE:
                return None
            r.status = "pending"
            if reset_attempts:
                r.attempts = 0
            r.eta_us = r.expires_us = None
            r.finished_us = r.claim = r.worker_id = r.lease_us = None
            r.error_type = r.error_message = r.error_traceback = None
            r.cancel_requested = False
            return r

        done = await self._change(task_id, change)
        if done is None or done[1] is None:
            return None
        async with self.guard("requeueing"):
            await self._hint(done[1], task_id)
        return self._view(task_id, done[1])

    async def _recover_expired(self, now: datetime) -> list[Task]:
        """Leases of this process's claims that ran out. Claims of a process that died come back
        by themselves: the server delivers their message again after AckWait (see ``_take``)."""
        now_us = to_us(now) or 0
        due = [(t, c) for t, (c, until) in self._local.items() if until <= now_us]
        out: list[Task] = []
        for task_id, claim in due:

            def change(r: Record, claim: str = claim) -> Record | None:
                if r.status != "running" or r.claim != claim or (r.lease_us or 0) > now_us:
                    return None
                if r.attempts >= r.max_attempts:
                    r.status, r.finished_us = "dead", now_us
                    r.error_type = "LeaseExpired"
                    r.error_message = f"lease expired on attempt {r.attempts} of {r.max_attempts}"
                else:
                    r.status = "pending"
                    r.eta_us = None
                r.claim = r.lease_us = None
                return r

            done = await self._change(task_id, change)
            self._forget(task_id)
            if done is None or done[1] is None:
                continue
            after = done[1]
            if after.status == "pending":
                await self._nak(after.reply or "")
            else:
                await self._ack(after.reply, b"+TERM")
            out.append(self._view(task_id, after))
        return out

    async def _expire(self, now: datetime) -> list[Task]:
        if await self.call("reading", lambda: kv_get(self._kv, _EXPIRING_MARK)) is None:
            return []
        now_us = to_us(now) or 0
        out: list[Task] = []
        for task_id, record in await self._records():
            if record.status not in ("pending", "waiting") or record.expires_us is None:
                continue
            if record.expires_us > now_us:
                continue

            def change(r: Record) -> Record | None:
                if r.status not in ("pending", "waiting") or r.expires_us is None:
                    return None
                if r.expires_us > now_us:
                    return None
                r.status, r.finished_us = "expired", now_us
                r.error_type, r.error_message = "TaskExpired", "expired before it started"
                return r

            done = await self._change(task_id, change)
            if done is not None and done[1] is not None:
                out.append(self._view(task_id, done[1]))
        return out

    # -- reading ---------------------------------------------------------------------------
    async def _get_tasks(self, task_ids: list[str]) -> dict[str, Task]:
        async with self.guard("reading tasks"):
            found = await gather(self._read(i) for i in task_ids)
        return {i: self._view(i, f[0]) for i, f in zip(task_ids, found, strict=True) if f}

    async def _records(self) -> list[tuple[str, Record]]:
        """Every task record, in key order (ids are time-ordered: roughly enqueue order)."""
        async with self.guard("listing tasks"):
            keys = sorted(k for k in await kv_keys(self._kv, "t.>"))
            values = await gather(kv_get(self._kv, k) for k in keys)
        out = []
        for key, value in zip(keys, values, strict=True):
            if value is None:
                continue
            token = key[2:]
            task_id = bytes.fromhex(token[2:]).decode() if token.startswith("x.") else token
            out.append((task_id, RECORD_DECODER.decode(value[0])))
        return out

    async def _list_tasks(
        self, queue: str | None, status: TaskStatus | None, limit: int, offset: int
    ) -> list[Task]:
        matches = [
            (i, r)
            for i, r in await self._records()
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
            await gather(kv_delete(self._kv, _task_key(i)) for i in doomed)
        return len(doomed)

    # -- dependencies ----------------------------------------------------------------------
    async def _promote(self, task_ids: list[str], now: datetime) -> list[Task]:
        def change(r: Record) -> Record | None:
            if r.status != "waiting":
                return None
            r.status = "pending"
            return r

        moved = []
        for task_id in task_ids:
            done = await self._change(task_id, change)
            if done is not None and done[1] is not None:
                async with self.guard("promoting"):
                    await self._hint(done[1], task_id)
                moved.append(self._view(task_id, done[1]))
        return moved

    async def _cancel_waiting(self, items: list[tuple[str, str]], now: datetime) -> list[Task]:
        now_us = to_us(now)
        out = []
        for task_id, reason in items:

            def change(r: Record, reason: str = reason) -> Record | None:
                if r.status != "waiting":
                    return None
                r.status, r.finished_us = "cancelled", now_us
                r.error_type, r.error_message = "DependencyFailed", reason
                return r

            done = await self._change(task_id, change)
            if done is not None and done[1] is not None:
                out.append(self._view(task_id, done[1]))
        return out

    async def _ever_waiting(self) -> bool:
        """Whether this project ever stored a WAITING task. Once seen, remembered; absent, asked
        again after a second (a dependent stored meanwhile by another process and missed here
        is settled by the enqueuer itself or by the upkeep sweep)."""
        if self._waiting_seen:
            return True
        now = time.monotonic()
        if now - self._waiting_checked < 1.0:
            return False
        self._waiting_checked = now
        async with self.guard("reading"):
            self._waiting_seen = await kv_get(self._kv, _WAITING_MARK) is not None
        return self._waiting_seen

    async def settle_waiting(self, limit: int = 1000) -> int:
        """The upkeep sweep, skipped without a read of every record when no task ever waited."""
        self._waiting_checked = 0.0
        if not await self._ever_waiting():
            return 0
        return await super().settle_waiting(limit)

    async def _dependents(self, task_ids: list[str]) -> list[Task]:
        """Through the ``d.<id>`` index, and not at all until a project ever stored a WAITING
        task (one read of a marker key per acknowledgement batch)."""
        if not await self._ever_waiting():
            return []
        async with self.guard("reading dependents"):
            lists = await gather(kv_get(self._kv, f"d.{key_token(i)}") for i in task_ids)
            ids = sorted(
                {
                    w
                    for found in lists
                    if found
                    for w in msgspec.msgpack.decode(found[0], type=list[str])
                }
            )
            found = await gather(self._read(i) for i in ids)
        return [
            self._view(i, f[0])
            for i, f in zip(ids, found, strict=True)
            if f is not None and f[0].status == "waiting"
        ]

    # -- schedules -------------------------------------------------------------------------
    async def _save_schedule(self, schedule: Schedule, payload: bytes) -> None:
        async with self.guard("saving a schedule"):
            await self._kv.put(f"s.{key_token(schedule.id)}", payload, validate_keys=False)

    async def _get_schedule(self, schedule_id: str) -> Schedule | None:
        async with self.guard("reading a schedule"):
            found = await kv_get(self._kv, f"s.{key_token(schedule_id)}")
        return None if found is None else self.serializer.decode_schedule(found[0])

    async def _list_schedules(self, state: ScheduleState | None) -> list[Schedule]:
        async with self.guard("listing schedules"):
            keys = sorted(await kv_keys(self._kv, "s.>"))
            values = await gather(kv_get(self._kv, k) for k in keys)
        found = [self.serializer.decode_schedule(v[0]) for v in values if v is not None]
        return [s for s in found if state is None or s.state is state]

    async def _update_schedule(
        self,
        schedule_id: str,
        changes: dict[str, Any],
        *,
        expected_next_run_at: datetime | None = None,
        check_next_run: bool = False,
    ) -> bool:
        key = f"s.{key_token(schedule_id)}"
        async with self.guard("updating a schedule"):
            for _ in range(8):
                found = await kv_get(self._kv, key)
                if found is None:
                    return False
                schedule = self.serializer.decode_schedule(found[0])
                if check_next_run and schedule.next_run_at != expected_next_run_at:
                    return False
                for name, value in changes.items():
                    setattr(schedule, name, value)
                payload = self.serializer.encode_schedule(schedule)
                if await kv_update(self._kv, key, payload, found[1]) is not None:
                    return True
                if check_next_run:
                    return False  # another scheduler advanced it first: its occurrence, not ours
        return False

    async def _delete_schedule(self, schedule_id: str) -> bool:
        key = f"s.{key_token(schedule_id)}"
        async with self.guard("deleting a schedule"):
            if await kv_get(self._kv, key) is None:
                return False
            return await kv_delete(self._kv, key)

    # -- worker registry -------------------------------------------------------------------
    async def _save_worker(self, worker_id: str, payload: bytes, expires_at: datetime) -> None:
        value = msgspec.msgpack.encode((to_us(expires_at), payload))
        async with self.guard("registering a worker"):
            await self._kv.put(f"w.{key_token(worker_id)}", value, validate_keys=False)

    async def _list_workers(self, now: datetime) -> list[bytes]:
        now_us = to_us(now) or 0
        async with self.guard("listing workers"):
            keys = await kv_keys(self._kv, "w.>")
            values = await gather(kv_get(self._kv, k) for k in keys)
            alive = []
            for key, value in zip(keys, values, strict=True):
                if value is None:
                    continue
                expires_us, payload = msgspec.msgpack.decode(value[0], type=tuple[int, bytes])
                if expires_us <= now_us:
                    await kv_delete(self._kv, key, value[1])
                else:
                    alive.append(payload)
        return alive

    async def _delete_worker(self, worker_id: str) -> bool:
        key = f"w.{key_token(worker_id)}"
        async with self.guard("unregistering a worker"):
            if await kv_get(self._kv, key) is None:
                return False
            return await kv_delete(self._kv, key)


class NATSQueue(SyncWrapper, async_class=AsyncNATSQueue):
    """Blocking API of :class:`AsyncNATSQueue`."""


__all__ = ["AsyncNATSQueue", "NATSQueue"]
