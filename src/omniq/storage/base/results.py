"""Result storage: where results wait for ``get_result``; results with a TTL expire.

A backend writes six primitives: ``_set_many``, ``_get``, ``_wait_for``, ``_get_latest``,
``_delete`` and ``_cleanup``. ``_get_many`` falls back to one ``_get`` per id.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Sequence
from datetime import datetime

from omniq._time import utcnow
from omniq.models.result import TaskResult
from omniq.storage.base.component import Component


class BaseResultStorage(Component):
    """Where results wait for ``get_result``; results with a TTL expire."""

    async def set(self, result: TaskResult) -> None:
        await self.set_many([result])

    async def set_many(self, results: Sequence[TaskResult]) -> None:
        await self.set_encoded([(r, self.serializer.encode_result(r)) for r in results])

    async def set_encoded(self, items: Sequence[tuple[TaskResult, bytes]]) -> None:
        """Results already encoded by this storage's serializer (a worker's completions)."""
        if items:
            await self._ensure()
            await self._set_many(list(items))

    async def get(self, task_id: str) -> TaskResult | None:
        await self._ensure()
        result = await self._get(task_id)
        if result is not None and result.is_expired():
            return None
        return result

    async def get_many(self, task_ids: Sequence[str]) -> dict[str, TaskResult]:
        await self._ensure()
        found = await self._get_many(list(task_ids))
        now = utcnow()
        return {k: v for k, v in found.items() if not v.is_expired(now)}

    async def wait(self, task_id: str, timeout: float | None = None) -> TaskResult | None:
        """The result once it exists; waits up to ``timeout`` seconds (None: without limit, 0: not
        at all) on the store's native wake-up. A result that exists but has expired (its
        ``result_ttl`` ran out) ends the wait at once with None: it will not come back."""
        await self._ensure()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            result = await self._get(task_id)
            if result is not None:
                return None if result.is_expired() else result
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            await self._wait_for(task_id, remaining)

    async def get_latest(self, schedule_id: str) -> TaskResult | None:
        await self._ensure()
        return await self._get_latest(schedule_id)

    async def delete(self, task_id: str) -> bool:
        await self._ensure()
        return await self._delete(task_id)

    async def cleanup(self) -> int:
        """Deletes expired results; returns how many."""
        await self._ensure()
        return await self._cleanup(utcnow())

    @abstractmethod
    async def _set_many(self, items: list[tuple[TaskResult, bytes]]) -> None: ...

    @abstractmethod
    async def _get(self, task_id: str) -> TaskResult | None: ...

    async def _get_many(self, task_ids: list[str]) -> dict[str, TaskResult]:
        found = {}
        for task_id in task_ids:
            result = await self._get(task_id)
            if result is not None:
                found[task_id] = result
        return found

    @abstractmethod
    async def _wait_for(self, task_id: str, timeout: float | None) -> None:
        """Returns when a result for ``task_id`` may exist, or after ``timeout``; must not miss a
        result written between the caller's last ``get`` and this call."""

    @abstractmethod
    async def _get_latest(self, schedule_id: str) -> TaskResult | None: ...

    @abstractmethod
    async def _delete(self, task_id: str) -> bool: ...

    @abstractmethod
    async def _cleanup(self, now: datetime) -> int: ...
