"""Claims on the NATS task queue: hints fetched from the queues' pull consumers become RUNNING
records, each by one compare-and-set, all of one claim in the same round trip; and the
recovery of claims whose holder died, from the messages the server delivers again.

A hint that carries its record as written at enqueue (see :class:`Hint`) is claimed without a
read; a hint whose record moved on since is read, and tried once more, in one batch again.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import msgspec

from omniq.exceptions import ConfigError, SerializationError
from omniq.models.event import EventType
from omniq.models.task import Task, TaskStatus
from omniq.storage.base import new_claim
from omniq.storage.nats._puller import Delivery
from omniq.storage.nats._records import (
    HINT_DECODER,
    RECORD_ENCODER,
    Hint,
    Record,
    decode_record,
    to_us,
)
from omniq.storage.nats._store import Change, TaskStore, task_key

_STATUSES = frozenset(s.value for s in TaskStatus)

#: Hints fetched beyond the free capacity, so that priority and ready time order the claim
#: across that many more waiting tasks than are claimed (JetStream itself delivers FIFO).
WINDOW = 16
#: Fetches one claim makes per queue at most while hints turn out not claimable.
MAX_ROUNDS = 8
#: Messages one recovery pull asks for: a pass pulls again while all it got were redelivered.
RECOVER_BATCH = 16


class Step:
    """What to do with one delivered hint, given its record: settle the message (``verb``,
    ``delay``), leave it (``verb`` None, ``record`` None), or write ``record`` (claimed when
    ``ending`` is None, otherwise ended: "dead", "poison" or "expired")."""

    __slots__ = ("delay", "ending", "lost_lease", "record", "task", "verb")

    def __init__(self, verb: bytes | None = None, delay: float = 0.0) -> None:
        self.verb = verb
        self.delay = delay
        self.record: Record | None = None
        self.ending: str | None = None
        self.task: Task | None = None
        self.lost_lease = False


def lost_lease(d: Delivery, record: Record) -> bool:
    """Whether ``d`` is the server delivering a RUNNING record's own message again: its holder
    neither finished it nor renewed it within AckWait."""
    return record.status == "running" and d.seq == record.seq and d.delivered > record.delivered


def _triage(d: Delivery, record: Record, now_us: int) -> Step | None:
    """The hints that cannot be claimed, settled without a write; None for the others."""
    if record.status == "running":
        if d.seq != record.seq:  # a duplicate hint of a task another message runs
            return Step(b"+ACK")
        if d.delivered <= record.delivered:  # an old copy of the current delivery
            return Step()
        return None
    if record.status != "pending":
        return Step(b"+ACK")  # final or waiting: the hint is spent
    if record.eta_us is not None and record.eta_us > now_us:
        return Step(b"-NAK", (record.eta_us - now_us) / 1e6)
    return None


class Claims(TaskStore):
    """The claim primitives of :class:`omniq.storage.nats.queue.AsyncNATSQueue`."""

    #: the free capacity of the last claim: how many messages a waiting request asks for
    _wait_batch = 1

    async def _claim(
        self, queues: list[str], limit: int, worker_id: str | None, lease: float, now: datetime
    ) -> tuple[list[Task], list[Task]]:
        if lease > self._ack_wait:
            raise ConfigError(
                f"lease {lease!r} s is longer than the NATS consumer's ack_wait "
                f"{self._ack_wait!r} s: raise ack_wait (or lease_timeout) on the queue"
            )
        self._wait_batch = limit
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
                got, gone = await self._round(deliveries, need, worker_id, lease, now_us)
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
        now_us: int,
    ) -> tuple[list[Task], list[Task]]:
        ready: list[tuple[tuple[int, int, int], Delivery, Hint]] = []
        for d in deliveries:
            try:
                hint = HINT_DECODER.decode(d.data)
            except msgspec.DecodeError:
                await self._ack(d.reply, b"+TERM")  # not ours: never again
                continue
            if hint.ready_us > now_us:  # delayed: the server holds it until it is due
                delay = b' {"delay": %d}' % ((hint.ready_us - now_us) * 1000)
                await self._ack(d.reply, b"-NAK" + delay)
                continue
            ready.append(((-hint.priority, hint.ready_us, d.seq), d, hint))
        ready.sort(key=lambda item: item[0])
        chosen, rest = ready[:need], ready[need:]
        # the rest stays with this process, first in line for its next claim
        self.puller.give_back([d for _, d, _ in rest])
        return await self._take([(d, hint) for _, d, hint in chosen], worker_id, lease, now_us)

    async def _take(
        self,
        chosen: list[tuple[Delivery, Hint]],
        worker_id: str | None,
        lease: float,
        now_us: int,
    ) -> tuple[list[Task], list[Task]]:
        """Claims the chosen hints' tasks, or settles the hints: one batch of compare-and-sets
        on the records as the hints carry them, then one more on those that moved on since."""
        found: list[tuple[bytes, int] | None] = [
            (h.record, h.revision) if h.record is not None else None for _, h in chosen
        ]
        todo = list(range(len(chosen)))
        claimed: list[Task] = []
        ended: list[Task] = []
        for _ in range(2):
            unread = [i for i in todo if found[i] is None]
            if unread:
                async with self.guard("claiming tasks"):
                    keys = [task_key(chosen[i][1].task_id) for i in unread]
                    for i, entry in zip(unread, await self._kv.get_many(keys), strict=True):
                        found[i] = entry
            writes: list[tuple[int, Step, bytes, int]] = []
            for i in todo:
                d, hint = chosen[i]
                entry = found[i]
                if entry is None:  # purged, or its record aged out: nothing to run
                    await self._ack(d.reply, b"+ACK")
                    continue
                record, corrupt = decode_record(entry[0])
                step = (
                    self._corrupt_step(d, hint.task_id, record, corrupt)
                    if corrupt or record.status not in _STATUSES
                    else self._step(d, hint.task_id, record, now_us)
                )
                if step.record is None:
                    await self._apply_verb(d, step)
                    continue
                self._start(step, worker_id, lease, now_us)
                writes.append((i, step, RECORD_ENCODER.encode(step.record), entry[1]))
            async with self.guard("claiming tasks"):
                revisions = await self._kv.update_many(
                    [(task_key(chosen[i][1].task_id), value, rev) for i, _, value, rev in writes]
                )
            todo = []
            for (i, step, value, _), revision in zip(writes, revisions, strict=True):
                if revision is None:  # changed meanwhile (cancelled, claimed, retried)
                    todo.append(i)
                    found[i] = None
                    continue
                task_id = chosen[i][1].task_id
                got, gone = await self._claimed(chosen[i][0], task_id, step, (value, revision))
                claimed.extend(got)
                ended.extend(gone)
            if not todo:
                break
        for i in todo:  # still changing: look again soon
            await self._ack(chosen[i][0].reply, b'-NAK {"delay": 50000000}')
        return claimed, ended

    async def _apply_verb(self, d: Delivery, step: Step) -> None:
        if step.verb == b"-NAK":
            await self._ack(d.reply, b'-NAK {"delay": %d}' % int(step.delay * 1e9))
        elif step.verb is not None:
            await self._ack(d.reply, step.verb)

    def _corrupt_step(self, d: Delivery, task_id: str, record: Record, corrupt: bool) -> Step:
        """A hint whose record is corrupt (it does not decode, or its status is no status): the
        claim writes it DEAD with the reason, as it does an undecodable payload, and goes on."""
        if not corrupt:  # decoded, with a status that is no status: the reason as readers see it
            view = self._view(task_id, record)
            record.error_type, record.error_message = view.error_type, view.error_message
        step = Step()
        step.record, step.ending = record, "poison"
        record.seq, record.delivered, record.reply = d.seq, d.delivered, d.reply
        return step

    def _step(self, d: Delivery, task_id: str, record: Record, now_us: int) -> Step:
        """How a claim treats one delivered hint (no I/O)."""
        settled = _triage(d, record, now_us)
        if settled is not None:
            return settled
        step = Step()
        step.record = record
        step.lost_lease = lost_lease(d, record)
        if step.lost_lease and record.attempts >= record.max_attempts:
            step.ending = "dead"
            record.lose_lease(now_us)
        elif record.status == "pending" and (record.expires_us or now_us + 1) <= now_us:
            step.ending = "expired"
            record.error_type, record.error_message = "TaskExpired", "expired before it started"
        if step.ending is None:
            try:
                step.task = self.serializer.decode_task(record.payload, task_id)
            except SerializationError as exc:
                step.ending = "poison"
                record.error_type, record.error_message = "SerializationError", str(exc)
        record.seq, record.delivered, record.reply = d.seq, d.delivered, d.reply
        return step

    @staticmethod
    def _start(step: Step, worker_id: str | None, lease: float, now_us: int) -> None:
        """The record as the claim writes it: RUNNING under a new claim, or ended."""
        record = step.record
        assert record is not None
        if step.ending is not None:
            record.status = "expired" if step.ending == "expired" else "dead"
            record.finished_us = now_us
            record.claim = record.lease_us = None
            return
        record.status = "running"
        record.attempts += 1
        record.worker_id = worker_id
        record.claim = new_claim(worker_id, record.attempts)
        record.started_us = now_us
        record.lease_us = now_us + int(lease * 1e6)
        record.cancel_requested = False
        record.eta_us = None

    async def _claimed(
        self, d: Delivery, task_id: str, step: Step, written: tuple[bytes, int]
    ) -> tuple[list[Task], list[Task]]:
        """After the write: events, acknowledgements and what the claim returns."""
        record = step.record
        assert record is not None
        if step.lost_lease:
            view = self._view(task_id, record)
            self._emit(EventType.LEASE_EXPIRED, view)
            if step.ending is None:
                self._emit(EventType.RETRY, view, reason="lease expired")
        if step.ending is not None:
            await self._ack(d.reply, b"+TERM" if step.ending != "expired" else b"+ACK")
            view = self._view(task_id, record)
            if step.ending == "dead":
                # reported here: the base would call every ended task an undecodable payload
                self._emit(EventType.DEAD, view, reason="lease expired")
                await self._write_final_results([view])
                await self._settle_dependents([task_id])
                return [], []
            return [], [view]
        assert step.task is not None
        assert record.claim is not None
        assert record.lease_us is not None
        self._local[task_id] = (record.claim, record.lease_us)
        self._known[task_id] = written
        return [record.lay_over(step.task)], []

    async def _wait_for_tasks(
        self, queues: list[str], timeout: float, stop: asyncio.Event | None
    ) -> None:
        consumers = [await self._consumer(q) for q in queues]
        async with self.guard("waiting for tasks"):
            await self.puller.wait(consumers, timeout, stop, self._wait_batch)

    # -- recovery --------------------------------------------------------------------------
    async def _recover_redelivered(self, now_us: int) -> list[Task]:
        """The claims of holders that died, on every queue of the project: the server delivers
        their messages again after AckWait, before any new message; each record is put back to
        PENDING (DEAD when out of attempts) and its message handed back (or ended). Messages
        that are not lost claims go straight back, untouched; the first new one ends the pass."""
        out: list[Task] = []
        async with self.guard("listing the queues' consumers"):
            consumers = [c.name for c in await self.jetstream.consumers_info(self.names.stream)]
        for consumer in consumers:
            for _ in range(MAX_ROUNDS):
                async with self.guard("recovering lost claims"):
                    deliveries = await self.puller.pull(consumer, RECOVER_BATCH)
                fresh = [d.reply for d in deliveries if d.delivered == 1]
                await self._hand_back(fresh)
                redelivered = [d for d in deliveries if d.delivered > 1]
                if redelivered:
                    out.extend(await self._reclaim(redelivered, now_us))
                if fresh or len(deliveries) < RECOVER_BATCH:
                    break
        return out

    async def _reclaim(self, deliveries: list[Delivery], now_us: int) -> list[Task]:
        hints: list[Hint | None] = []
        for d in deliveries:
            try:
                hints.append(HINT_DECODER.decode(d.data))
            except msgspec.DecodeError:
                hints.append(None)
        ids = [h.task_id for h in hints if h is not None]
        records = dict(zip(ids, await self._read_many(ids), strict=True))
        lost = {
            h.task_id: d
            for d, h in zip(deliveries, hints, strict=True)
            if h is not None and (r := records[h.task_id]) is not None and lost_lease(d, r)
        }
        keep = {id(d) for d in lost.values()}
        # the others go back as they came: their claimers settle them by their records
        await self._hand_back([d.reply for d in deliveries if id(d) not in keep])

        def back(d: Delivery) -> Change:
            def change(r: Record) -> Record | None:
                if not lost_lease(d, r):
                    return None
                r.lose_lease(now_us)
                r.seq, r.delivered, r.reply = d.seq, d.delivered, d.reply
                return r

            return change

        done = await self._change_many([(i, back(d)) for i, d in lost.items()])
        out = []
        for (task_id, d), changed in zip(lost.items(), done, strict=True):
            if changed is None or changed[1] is None:
                await self._hand_back([d.reply])
                continue
            await self._end_message(changed[1])
            out.append(self._view(task_id, changed[1]))
        return out


__all__ = ["MAX_ROUNDS", "WINDOW", "Claims"]
