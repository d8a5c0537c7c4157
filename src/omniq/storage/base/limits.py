"""Capability: rate limits and key concurrency limits, enforced across every worker of a project.

A backend writes four primitives, each atomic in its store:

- ``_take_token(key, interval, burst, now)``: one token from the bucket ``key`` (GCRA, see
  :func:`omniq.models.limits.take_token`): 0.0 when taken, else the seconds until one is due;
- ``_acquire_slot(key, holder, limit, expires_at, now)``: a running slot under ``key`` for
  ``holder`` (granted again, with the new expiry, to a holder already in), at most ``limit``
  live holders; a holder past ``expires_at`` no longer counts (a killed worker's slot comes back);
- ``_release_slot(key, holder)``;
- ``_limit_usage(now)``: every bucket and key, for ``omniq info``.

Stores that update a record by compare-and-set reuse the pure functions of
:mod:`omniq.models.limits` (``take_token``, ``admit``); Redis and PostgreSQL do the same
arithmetic in one script / one statement. Nothing here runs for a task without limits: the worker
asks only for tasks that carry one (see ``omniq.workers._limits``).
"""

from __future__ import annotations

from abc import abstractmethod
from datetime import datetime, timedelta
from typing import ClassVar

from omniq._time import utcnow
from omniq.models.limits import LimitUsage, RateLimit, check_concurrency_key
from omniq.storage.base.capabilities import Capability
from omniq.storage.base.queue import BaseTaskQueue


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
