"""Rate limits and key concurrency on Redis: one Lua script (``lua/limits.lua``) per operation,
so taking a token or a slot is one atomic round trip whatever the number of workers."""

from __future__ import annotations

from datetime import datetime

from omniq._time import utcnow
from omniq.models.limits import LimitUsage, SlotUsage, bucket_usage
from omniq.storage.base import SupportsLimits
from omniq.storage.redis._conn import to_us
from omniq.storage.redis._rows import RedisParts

_US = 1_000_000
#: index entries one sweep script looks at, so a backlog of keys never blocks the server long
_SWEEP_BATCH = 500


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisLimits(RedisParts, SupportsLimits):
    """The limit primitives of the Redis task queue (times in whole microseconds)."""

    async def _take_token(self, key: str, interval: float, burst: int, now: datetime) -> float:
        interval_us = max(1, round(interval * _US))
        wait_us = await self._run("limits", now, "take", key, interval_us, burst)
        return int(wait_us) / _US

    async def _acquire_slot(
        self, key: str, holder: str, limit: int, expires_at: datetime, now: datetime
    ) -> bool:
        granted = await self._run("limits", now, "acquire", key, holder, limit, to_us(expires_at))
        return bool(granted)

    async def _release_slot(self, key: str, holder: str) -> None:
        await self._run("limits", utcnow(), "release", key, holder)

    async def _sweep_limits(self, now: datetime) -> int:
        total = 0
        while True:
            gone, seen = await self._run("limits", now, "sweep", _SWEEP_BATCH)
            total += int(gone)
            if int(seen) < _SWEEP_BATCH:
                return total

    async def _limit_usage(self, now: datetime) -> LimitUsage:
        buckets, slots = await self._run("limits", now, "usage")
        now_s = now.timestamp()
        return LimitUsage(
            buckets=[
                bucket_usage(_text(key), float(tat) / _US, float(iv) / _US, int(burst), now_s)
                for key, tat, iv, burst in buckets
            ],
            slots=[
                SlotUsage(key=_text(key), limit=int(limit), running=int(live))
                for key, limit, live in slots
            ],
        )
