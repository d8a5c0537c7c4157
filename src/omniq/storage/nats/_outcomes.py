"""What becomes of a claimed task on the NATS task queue: heartbeats, completion, failure,
release, cancellation, requeue and the lease and TTL sweeps. Each is a compare-and-set on the
task record (a batch of them in one round trip), then an acknowledgement of its message: ``+ACK``
and ``+TERM`` are not waited for (lost, the message comes back after AckWait and its next
claimer acknowledges it by the record, which says the task is over); a ``-NAK`` that must be
claimable at once is (see :meth:`TaskStore._nak`)."""

from __future__ import annotations

from datetime import datetime

from omniq.models.task import Task
from omniq.storage.base import BaseResultStorage, Completion, Failure, HeartbeatStatus
from omniq.storage.nats._claims import Claims
from omniq.storage.nats._records import Record, to_us
from omniq.storage.nats._store import Change

_REQUEUEABLE = ("dead", "cancelled", "expired", "failed")
EXPIRING_MARK = "m.expiring"


class Outcomes(Claims):
    """The outcome primitives of :class:`omniq.storage.nats.queue.AsyncNATSQueue`."""

    async def _heartbeat(
        self, claims: list[tuple[str, str]], lease: float, now: datetime
    ) -> dict[str, HeartbeatStatus]:
        until = (to_us(now) or 0) + int(lease * 1e6)

        def renew(claim: str) -> Change:
            def change(r: Record) -> Record | None:
                if r.status != "running" or r.claim != claim:
                    return None
                r.lease_us = until
                return r

            return change

        done = await self._change_many([(t, renew(c)) for t, c in claims], known=True)
        out: dict[str, HeartbeatStatus] = {}
        for (task_id, claim), changed in zip(claims, done, strict=True):
            if changed is None or changed[1] is None:
                out[task_id] = HeartbeatStatus.LOST
                continue
            after = changed[1]
            await self._ack(after.reply, b"+WPI")  # the server-side lease starts again
            if task_id in self._local:
                self._local[task_id] = (claim, until)
            out[task_id] = HeartbeatStatus.CANCEL if after.cancel_requested else HeartbeatStatus.OK
        return out

    async def _set_progress(self, items: list[tuple[str, str, bytes]]) -> list[bool]:
        def write(claim: str, progress: bytes) -> Change:
            def change(r: Record) -> Record | None:
                if r.status != "running" or r.claim != claim:
                    return None
                r.progress = progress
                return r

            return change

        done = await self._change_many([(t, write(c, p)) for t, c, p in items], known=True)
        return [changed is not None and changed[1] is not None for changed in done]

    async def _complete(
        self,
        completions: list[Completion],
        now: datetime,
        result_storage: BaseResultStorage | None,
    ) -> list[bool]:
        now_us = to_us(now)

        def finish(claim: str) -> Change:
            def change(r: Record) -> Record | None:
                if r.status != "running" or r.claim != claim:
                    return None
                r.status, r.finished_us, r.lease_us = "success", now_us, None
                return r

            return change

        done = await self._change_many(
            [(c.task_id, finish(c.claim)) for c in completions], known=True
        )
        acks = []
        for c, changed in zip(completions, done, strict=True):
            self._forget(c.task_id)
            ok = changed is not None and changed[1] is not None
            if changed is not None and changed[1] is not None:
                await self._ack(changed[1].reply, b"+ACK")
            acks.append(ok)
        return acks

    async def _fail(self, failure: Failure, now: datetime) -> Task | None:
        now_us = to_us(now) or 0
        retry_us = to_us(failure.retry_at)

        def change(r: Record) -> Record | None:
            if r.status != "running" or r.claim != failure.claim:
                return None
            r.error_type = failure.error_type
            r.error_message = failure.error_message
            r.error_traceback = failure.error_traceback
            status = failure.status.value  # decided by the caller (omniq.queue.retry.decide)
            r.status = status
            r.claim = r.lease_us = None
            if status == "pending":
                r.eta_us = retry_us
            else:
                r.finished_us = now_us
            return r

        done = await self._change(failure.task_id, change, known=True)
        self._forget(failure.task_id)
        if done is None or done[1] is None:
            return None
        await self._end_message(done[1], ((retry_us or now_us) - now_us) / 1e6)
        return self._view(failure.task_id, done[1])

    async def _release(
        self, task_id: str, claim: str, now: datetime, eta: datetime | None = None
    ) -> Task | None:
        now_us = to_us(now)
        eta_us = None if eta is None else to_us(eta)

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
                if eta_us is not None:
                    r.eta_us = eta_us
            r.claim = r.lease_us = None
            return r

        done = await self._change(task_id, change, known=True)
        self._forget(task_id)
        if done is None or done[1] is None:
            return None
        delay = 0.0
        if eta is not None and done[1].status == "pending":
            delay = max(0.0, (eta - now).total_seconds())
        await self._end_message(done[1], delay)
        return self._view(task_id, done[1])

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
        await self._hints([(task_id, done[1], None)])
        return self._view(task_id, done[1])

    async def _recover_expired(self, now: datetime) -> list[Task]:
        """Leases that ran out: this process's own claims (by their lease in the record), and
        those of any process that died (by the server's AckWait: see ``_recover_redelivered``)."""
        now_us = to_us(now) or 0
        # the server's first: the messages of this process's own claims, handed back below,
        # must not come round again in the same pass
        out = await self._recover_redelivered(now_us)
        due = [(t, c) for t, (c, until) in self._local.items() if until <= now_us]

        def expire(claim: str) -> Change:
            def change(r: Record) -> Record | None:
                if r.status != "running" or r.claim != claim or (r.lease_us or 0) > now_us:
                    return None
                r.lose_lease(now_us)
                return r

            return change

        if due:
            done = await self._change_many([(t, expire(c)) for t, c in due])
            for (task_id, _), changed in zip(due, done, strict=True):
                self._forget(task_id)
                if changed is not None and changed[1] is not None:
                    await self._end_message(changed[1])
                    out.append(self._view(task_id, changed[1]))
        return out

    async def _expire(self, now: datetime) -> list[Task]:
        async with self.guard("reading"):
            if await self._kv.get(EXPIRING_MARK) is None:
                return []
        now_us = to_us(now) or 0

        def lapsed(r: Record) -> bool:
            return (
                r.status in ("pending", "waiting")
                and r.expires_us is not None
                and r.expires_us <= now_us
            )

        def change(r: Record) -> Record | None:
            if not lapsed(r):
                return None
            r.status, r.finished_us = "expired", now_us
            r.error_type, r.error_message = "TaskExpired", "expired before it started"
            return r

        doomed = [task_id for task_id, record in await self._records() if lapsed(record)]
        done = await self._change_many([(t, change) for t in doomed]) if doomed else []
        return [
            self._view(t, c[1]) for t, c in zip(doomed, done, strict=True) if c and c[1] is not None
        ]


__all__ = ["EXPIRING_MARK", "Outcomes"]
