"""NATS result storage: one KV bucket per project, ``r.<task id>`` and ``l.<schedule id>`` (the
latest result of a schedule). The bucket's ``max_age`` expires entries on the server (native
TTL); a shorter ``result_ttl`` of one task is honoured on read and by :meth:`cleanup`. Waiting
for a result is a KV watch on its key: the server pushes the write, nobody polls."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import nats.errors

from omniq._sync import SyncWrapper
from omniq._time import utcnow
from omniq.config import get_settings
from omniq.models.result import TaskResult
from omniq.storage.base import BaseResultStorage
from omniq.storage.nats._conn import Bucket, NATSComponent, key_token

#: The bucket keeps entries at least this long even when RESULT_TTL is shorter or unset.
_DEFAULT_MAX_AGE = 7 * 86_400.0
_SHORT_LIVED = "m.short-lived"


class AsyncNATSResultStorage(NATSComponent, BaseResultStorage):
    """Results in a JetStream KV bucket with a TTL."""

    def __init__(self, *, results_max_age: float | None = None, **options: Any) -> None:
        for unused in ("queues", "lease_timeout"):
            options.pop(unused, None)
        super().__init__(**options)
        ttl = results_max_age if results_max_age is not None else get_settings().RESULT_TTL
        self.results_max_age = float(ttl) if ttl else _DEFAULT_MAX_AGE
        self._bucket: Bucket | None = None
        self._short_lived = False

    def __repr__(self) -> str:
        return f"AsyncNATSResultStorage(servers={self.where!r}, project_name={self.project_name!r})"

    async def _prepare(self) -> None:
        self._bucket = await self.ensure_bucket(self.names.results_bucket, self.results_max_age)

    @property
    def _kv(self) -> Bucket:
        assert self._bucket is not None, "connect() first"
        return self._bucket

    async def _set_many(self, items: list[tuple[TaskResult, bytes]]) -> None:
        writes: list[tuple[str, bytes]] = []
        if not self._short_lived and any(
            r.expires_at is not None
            and r.expires_at < utcnow() + timedelta(seconds=self.results_max_age)
            for r, _ in items
        ):
            # a result that expires before the bucket drops it: cleanup() has work to do
            writes.append((_SHORT_LIVED, b"1"))
            self._short_lived = True
        for result, payload in items:
            writes.append((f"r.{key_token(result.task_id)}", payload))
            if result.schedule_id:
                writes.append((f"l.{key_token(result.schedule_id)}", payload))
        async with self.guard("storing results"):
            await self._kv.put_many(writes)

    async def _get(self, task_id: str) -> TaskResult | None:
        async with self.guard("reading a result"):
            found = await self._kv.get(f"r.{key_token(task_id)}")
        return None if found is None else self.serializer.decode_result(found[0], task_id)

    async def _get_many(self, task_ids: list[str]) -> dict[str, TaskResult]:
        async with self.guard("reading results"):
            found = await self._kv.get_many([f"r.{key_token(i)}" for i in task_ids])
        return {
            i: self.serializer.decode_result(f[0], i)
            for i, f in zip(task_ids, found, strict=True)
            if f is not None
        }

    async def _wait_for(self, task_id: str, timeout: float | None) -> None:
        # the watch delivers the key's current value first: a result written after the
        # caller's last read is never missed
        async with self.guard("waiting for a result"):
            watcher = await self._kv.kv.watch(f"r.{key_token(task_id)}")
            try:
                while True:
                    try:
                        entry = await watcher.updates(  # type: ignore[no-untyped-call]
                            timeout=timeout if timeout else 60.0
                        )
                    except nats.errors.TimeoutError:
                        if timeout:
                            return
                        continue
                    if entry is not None and entry.value:
                        return
            finally:
                await watcher.stop()  # type: ignore[no-untyped-call]

    async def _get_latest(self, schedule_id: str) -> TaskResult | None:
        async with self.guard("reading a result"):
            found = await self._kv.get(f"l.{key_token(schedule_id)}")
        return None if found is None else self.serializer.decode_result(found[0])

    async def _delete(self, task_id: str) -> bool:
        async with self.guard("deleting a result"):
            return await self._kv.delete_existing(f"r.{key_token(task_id)}")

    async def _cleanup(self, now: datetime) -> int:
        """Results whose own ``result_ttl`` ran out before the bucket's ``max_age`` (none to look
        for until such a result was ever stored)."""
        async with self.guard("cleaning results"):
            if await self._kv.get(_SHORT_LIVED) is None:
                return 0
            keys = await self._kv.keys("r.>")
            values = await self._kv.get_many(keys)
            doomed = [
                (k, v[1])
                for k, v in zip(keys, values, strict=True)
                if v is not None and self.serializer.decode_result(v[0]).is_expired(now)
            ]
            await self._kv.delete_many(doomed)
        return len(doomed)

    async def _health(self) -> dict[str, Any]:
        return {"servers": self.where, "bucket": self.names.results_bucket}


class NATSResultStorage(SyncWrapper, async_class=AsyncNATSResultStorage):
    """Blocking API of :class:`AsyncNATSResultStorage`."""


__all__ = ["AsyncNATSResultStorage", "NATSResultStorage"]
