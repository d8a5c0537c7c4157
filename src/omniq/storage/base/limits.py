"""Capability: rate limits and key concurrency limits, enforced across every worker of a project.

A backend writes four primitives, each atomic in its store:

- ``_take_token(key, interval, burst, now)``: one token from the bucket ``key`` (GCRA, see
  :func:`omniq.models.limits.take_token`): 0.0 when taken, else the seconds until one is due;
- ``_acquire_slot(key, holder, limit, expires_at, now)``: a running slot under ``key`` for
  ``holder`` (granted again, with the new expiry, to a holder already in), at most ``limit``
  live holders; a holder past ``expires_at`` no longer counts (a killed worker's slot comes back);
- ``_release_slot(key, holder)``;
- ``_limit_usage(now)``: every bucket and key, for ``omniq info``;
- ``_sweep_limits(now)``: deletes the records that hold nothing any more (see
  :meth:`SupportsLimits.sweep_limits`), returning how many went.

Stores that change one record atomically (a transaction, a compare-and-set) subclass
:class:`RecordLimits` and write two primitives instead, which reuse the pure functions of
:mod:`omniq.models.limits`; Redis and PostgreSQL do the same arithmetic in one script / one
function call. Nothing here runs for a task without limits: the worker
asks only for tasks that carry one (see ``omniq.workers._limits``).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import ClassVar, TypeVar

import msgspec

from omniq._time import utcnow
from omniq.models.limits import (
    BucketRecord,
    LimitUsage,
    RateLimit,
    SlotRecord,
    check_concurrency_key,
    new_bucket,
    new_slots,
)
from omniq.storage.base.capabilities import Capability
from omniq.storage.base.queue import BaseTaskQueue

T = TypeVar("T")
R = TypeVar("R", BucketRecord, SlotRecord)


class SupportsLimits(BaseTaskQueue):
    """Offers token buckets and key concurrency slots shared by all workers."""

    provides: ClassVar[Capability | None] = Capability.LIMITS

    async def take_token(self, key: str, limit: RateLimit) -> float:
        """Takes one token from bucket ``key``: 0.0 when taken, else the seconds until the next
        token is due (nothing taken)."""
        await self._ensure()
        return await self._take_token(key, limit.interval, limit.burst, utcnow())

    async def acquire_slot(self, key: str, holder: str, limit: int, ttl: float) -> bool:
        """A slot under ``key`` for ``holder`` for ``ttl`` seconds, if fewer than ``limit`` live
        holders have one; a holder already in is renewed (the worker's heartbeat does that)."""
        check_concurrency_key(key, "a concurrency key")
        await self._ensure()
        now = utcnow()
        return await self._acquire_slot(key, holder, limit, now + timedelta(seconds=ttl), now)

    async def release_slot(self, key: str, holder: str) -> None:
        await self._ensure()
        await self._release_slot(key, holder)

    async def limit_usage(self) -> LimitUsage:
        """Every rate-limit bucket and concurrency key the store holds, as of now."""
        await self._ensure()
        usage = await self._limit_usage(utcnow())
        return LimitUsage(
            buckets=sorted(usage.buckets, key=lambda b: b.key),
            slots=sorted(usage.slots, key=lambda s: s.key),
        )

    async def sweep_limits(self) -> int:
        """Deletes the records that hold nothing any more: a bucket that is full again (a missing
        bucket is a full one, so nothing changes for the next token) and a concurrency key with
        no live slot. Keys are often per user, so without this the store would keep one record
        per user ever seen. The worker's upkeep calls it; returns how many records went."""
        await self._ensure()
        return await self._sweep_limits(utcnow())

    @abstractmethod
    async def _take_token(self, key: str, interval: float, burst: int, now: datetime) -> float: ...

    @abstractmethod
    async def _acquire_slot(
        self, key: str, holder: str, limit: int, expires_at: datetime, now: datetime
    ) -> bool: ...

    @abstractmethod
    async def _release_slot(self, key: str, holder: str) -> None: ...

    @abstractmethod
    async def _limit_usage(self, now: datetime) -> LimitUsage: ...

    @abstractmethod
    async def _sweep_limits(self, now: datetime) -> int: ...


#: ``change(stored record or None) -> (record to store or None to leave it as it is, answer)``
Change = Callable[[bytes | None], tuple[bytes | None, T]]


def _decoded(raw: bytes | None, kind: type[R]) -> R | None:
    """A stored record, or None when absent or unreadable (a foreign or older writer's: it is
    replaced rather than failing every task under its key)."""
    if raw is None:
        return None
    try:
        return msgspec.json.decode(raw, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def spent(kind: str, raw: bytes, now_s: float) -> bool:
    """Whether the record ``(kind, raw)`` holds nothing at ``now_s``: a bucket full again (its
    ``tat`` is past, which is what a missing bucket starts from), a concurrency key whose slots
    have all been released or have lapsed. An unreadable record is spent too (it would be
    replaced on its next change anyway)."""
    if kind == "bucket":
        bucket = _decoded(raw, BucketRecord)
        return bucket is None or bucket.tat <= now_s
    if kind == "slots":
        slots = _decoded(raw, SlotRecord)
        return slots is None or all(exp <= now_s for exp in slots.holders.values())
    return False


class RecordLimits(SupportsLimits):
    """The limits of a store that changes one small record atomically: in a transaction
    (SQLite), by compare-and-set on a revision (NATS KV, the File backend's objects) or between
    two awaits (memory). Such a backend writes two primitives instead of four:

    - ``_change_limit(kind, key, change)``: applies ``change`` to the record ``(kind, key)``
      atomically (``kind`` is "bucket" or "slots");
    - ``_read_limits()``: every ``(kind, key, record)``;
    - ``_drop_limits(spent)``: deletes every record for which ``spent(kind, record)`` holds, the
      check and the delete atomic together (a record changed in between is kept).

    The arithmetic is :mod:`omniq.models.limits`', the same as Redis' script and PostgreSQL's
    functions do."""

    async def _take_token(self, key: str, interval: float, burst: int, now: datetime) -> float:
        now_s = now.timestamp()

        def change(raw: bytes | None) -> tuple[bytes | None, float]:
            bucket = _decoded(raw, BucketRecord) or new_bucket(now_s)
            wait = bucket.take(interval, burst, now_s)
            return (None if wait else msgspec.json.encode(bucket)), wait

        return await self._change_limit("bucket", key, change)

    async def _acquire_slot(
        self, key: str, holder: str, limit: int, expires_at: datetime, now: datetime
    ) -> bool:
        def change(raw: bytes | None) -> tuple[bytes | None, bool]:
            slots = _decoded(raw, SlotRecord) or new_slots()
            granted = slots.acquire(holder, limit, expires_at.timestamp(), now.timestamp())
            return msgspec.json.encode(slots), granted

        return await self._change_limit("slots", key, change)

    async def _release_slot(self, key: str, holder: str) -> None:
        def change(raw: bytes | None) -> tuple[bytes | None, None]:
            slots = _decoded(raw, SlotRecord)
            if slots is None or slots.holders.pop(holder, None) is None:
                return None, None
            return msgspec.json.encode(slots), None

        await self._change_limit("slots", key, change)

    async def _limit_usage(self, now: datetime) -> LimitUsage:
        now_s = now.timestamp()
        usage = LimitUsage()
        for kind, key, raw in await self._read_limits():
            if kind == "bucket" and (bucket := _decoded(raw, BucketRecord)) is not None:
                usage.buckets.append(bucket.usage(key, now_s))
            elif kind == "slots" and (slots := _decoded(raw, SlotRecord)) is not None:
                usage.slots.append(slots.usage(key, now_s))
        return usage

    async def _sweep_limits(self, now: datetime) -> int:
        now_s = now.timestamp()
        return await self._drop_limits(lambda kind, raw: spent(kind, raw, now_s))

    @abstractmethod
    async def _change_limit(self, kind: str, key: str, change: Change[T]) -> T: ...

    @abstractmethod
    async def _drop_limits(self, spent: Callable[[str, bytes], bool]) -> int: ...

    @abstractmethod
    async def _read_limits(self) -> list[tuple[str, str, bytes]]: ...
