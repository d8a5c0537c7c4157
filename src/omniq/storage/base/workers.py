"""Capability: the worker registry behind ``omniq info``. A backend writes three primitives:
``_save_worker``, ``_list_workers`` and ``_delete_worker``; records expire by themselves."""

from __future__ import annotations

from abc import abstractmethod
from datetime import datetime, timedelta
from typing import ClassVar

import msgspec

from omniq._time import utcnow
from omniq.models.worker import WorkerInfo
from omniq.storage.base.capabilities import Capability
from omniq.storage.base.queue import BaseTaskQueue


class SupportsWorkerRegistry(BaseTaskQueue):
    """Offers publishing the state of live workers."""

    provides: ClassVar[Capability | None] = Capability.WORKERS

    async def register_worker(self, info: WorkerInfo, ttl: float) -> None:
        """Publishes a worker's state for ``omniq info``; it disappears ``ttl`` seconds after
        the last call unless renewed (a worker that is killed cannot say goodbye)."""
        await self._ensure()
        payload = msgspec.json.encode(info)
        await self._save_worker(info.worker_id, payload, utcnow() + timedelta(seconds=ttl))

    async def unregister_worker(self, worker_id: str) -> bool:
        await self._ensure()
        return await self._delete_worker(worker_id)

    async def list_workers(self) -> list[WorkerInfo]:
        """Workers alive (renewed within their ttl), oldest first."""
        await self._ensure()
        found = []
        for payload in await self._list_workers(utcnow()):
            try:
                found.append(msgspec.json.decode(payload, type=WorkerInfo))
            except msgspec.DecodeError:  # a newer or foreign writer: skip, do not fail the list
                continue
        return sorted(found, key=lambda w: (w.started_at, w.worker_id))

    @abstractmethod
    async def _save_worker(self, worker_id: str, payload: bytes, expires_at: datetime) -> None:
        """Upserts a worker's record, kept until ``expires_at`` unless saved again."""

    @abstractmethod
    async def _list_workers(self, now: datetime) -> list[bytes]:
        """The payloads of workers whose record has not expired at ``now``."""

    @abstractmethod
    async def _delete_worker(self, worker_id: str) -> bool: ...
