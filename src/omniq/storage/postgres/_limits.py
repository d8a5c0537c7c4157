"""Rate limits and key concurrency on PostgreSQL: a token is one statement (``take_token``), a
slot one function call (``acquire_slot``, migration 0007), whatever the number of workers."""

from __future__ import annotations

from datetime import datetime

from omniq.models.limits import LimitUsage, SlotUsage, bucket_usage
from omniq.storage.base import SupportsLimits
from omniq.storage.postgres._component import PgComponent


class PgLimits(PgComponent, SupportsLimits):
    """The limit primitives of the PostgreSQL task queue (times in seconds since the epoch)."""

    _sql: dict[str, str]

    async def _take_token(self, key: str, interval: float, burst: int, now: datetime) -> float:
        wait: float = await self.pool.fetchval(
            self._sql["take_token"], self.project_name, key, interval, burst, now.timestamp()
        )
        return wait

    async def _acquire_slot(
        self, key: str, holder: str, limit: int, expires_at: datetime, now: datetime
    ) -> bool:
        granted: bool = await self.pool.fetchval(
            self._sql["acquire_slot"],
            self.project_name,
            key,
            holder,
            limit,
            expires_at.timestamp(),
            now.timestamp(),
        )
        return granted

    async def _release_slot(self, key: str, holder: str) -> None:
        await self.pool.execute(self._sql["release_slot"], self.project_name, key, holder)

    async def _sweep_limits(self, now: datetime) -> int:
        now_s, sql = now.timestamp(), self._sql
        status = await self.pool.execute(sql["sweep_buckets"], self.project_name, now_s)
        gone = int(status.rsplit(" ", 1)[-1])
        async with self.pool.acquire() as conn, conn.transaction():
            keys = [
                r["key"] for r in await conn.fetch(sql["sweep_lock_keys"], self.project_name, now_s)
            ]
            if keys:
                gone += await conn.fetchval(sql["sweep_keys"], self.project_name, now_s, keys)
        await self.pool.execute(sql["sweep_slots"], self.project_name, now_s)
        return gone

    async def _limit_usage(self, now: datetime) -> LimitUsage:
        now_s = now.timestamp()
        buckets = await self.pool.fetch(self._sql["limit_buckets"], self.project_name)
        slots = await self.pool.fetch(self._sql["limit_slots"], self.project_name, now_s)
        return LimitUsage(
            buckets=[
                bucket_usage(r["key"], r["tat"], r["interval"], r["burst"], now_s) for r in buckets
            ],
            slots=[SlotUsage(key=r["key"], limit=r["lim"], running=r["running"]) for r in slots],
        )


__all__ = ["PgLimits"]
