"""Capability: the cancel signal. When the cancellation of a running task is requested, the
queue tells the workers through the store's own wake-up (LISTEN/NOTIFY on PostgreSQL, pub/sub on
Redis, the wake sockets of SQLite, callbacks in memory), and the worker running the task stops it
at once. A backend writes two primitives: ``_signal_cancel`` (publish one task id) and
``_listen_cancels`` (while open, hand every id published in the project, by any process, to a
callback).

Without the capability the fallback is the heartbeat: a worker learns of the request when it
next renews its leases (a third of the lease, 10 s by default). The heartbeat keeps running with
the signal too, so a signal that is lost (a subscription being re-established) is still seen
there."""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import ClassVar

from omniq._aio import raise_if_cancelled
from omniq.models.task import Task
from omniq.storage.base.capabilities import Capability
from omniq.storage.base.queue import BaseTaskQueue


class SupportsCancelSignal(BaseTaskQueue):
    """Offers delivering a running task's cancellation to its worker at once."""

    provides: ClassVar[Capability | None] = Capability.CANCEL_SIGNAL

    async def _cancel_requested(self, task: Task) -> None:
        await self._signal_cancel(task.id)

    async def cancel_signals(self) -> AsyncIterator[str]:
        """The ids of running tasks of this project whose cancellation is requested from now on,
        as they are requested (a worker stops those it runs). Runs until the consumer stops."""
        await self._ensure()
        inbox: asyncio.Queue[str] = asyncio.Queue()
        async with self._listen_cancels(inbox.put_nowait):
            while True:
                raise_if_cancelled()  # a cancel that opening the subscription swallowed
                yield await inbox.get()

    @abstractmethod
    async def _signal_cancel(self, task_id: str) -> None:
        """Publishes that the cancellation of running task ``task_id`` was requested."""

    @abstractmethod
    def _listen_cancels(self, deliver: Callable[[str], None]) -> AbstractAsyncContextManager[None]:
        """While open, ``deliver(task_id)`` runs on the loop for each cancellation published in
        this project, by this process or another."""
