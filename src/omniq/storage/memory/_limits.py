"""Rate limits and key concurrency for the memory backend: records in this process's dicts.

Every primitive runs without an ``await``, which makes each one atomic on the event loop (the
limits hold across the workers of this process, the only ones a memory queue has)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from omniq.models.limits import (
    BucketRecord,
    LimitUsage,
    SlotRecord,
    new_bucket,
    new_slots,
)
from omniq.storage.base import SupportsLimits


class InProcessLimits(SupportsLimits):
    """Buckets and slots kept in dicts (see :class:`SupportsLimits` for the contract)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._buckets: dict[str, BucketRecord] = {}
        self._slots: dict[str, SlotRecord] = {}

    def _limit_records(self) -> tuple[dict[str, BucketRecord], dict[str, SlotRecord]]:
        return self._buckets, self._slots

    async def _take_token(self, key: str, interval: float, burst: int, now: datetime) -> float:
        buckets, _ = self._limit_records()
        now_s = now.timestamp()
        bucket = buckets.setdefault(key, new_bucket(now_s))
        return bucket.take(interval, burst, now_s)

    async def _acquire_slot(
        self, key: str, holder: str, limit: int, expires_at: datetime, now: datetime
    ) -> bool:
        _, slots = self._limit_records()
        record = slots.setdefault(key, new_slots())
        return record.acquire(holder, limit, expires_at.timestamp(), now.timestamp())

    async def _release_slot(self, key: str, holder: str) -> None:
        _, slots = self._limit_records()
        record = slots.get(key)
        if record is not None:
            record.holders.pop(holder, None)

    async def _limit_usage(self, now: datetime) -> LimitUsage:
        buckets, slots = self._limit_records()
        now_s = now.timestamp()
        return LimitUsage(
            buckets=[b.usage(k, now_s) for k, b in buckets.items()],
            slots=[s.usage(k, now_s) for k, s in slots.items()],
        )
