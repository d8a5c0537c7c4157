"""Claimers blocked on a set of queues, woken by whatever the store hears: the one wake-up
mechanism of the in-process backends (memory) and of the listeners of network ones (PostgreSQL's
LISTEN/NOTIFY)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable


class QueueWaiters:
    def __init__(self) -> None:
        self.items: list[tuple[frozenset[str], asyncio.Future[None]]] = []

    def notify(self, queue: str) -> None:
        """Wakes every claimer waiting on ``queue``."""
        if not self.items:
            return
        keep = []
        for queues, fut in self.items:
            if queue in queues:
                if not fut.done():
                    fut.set_result(None)
            elif not fut.done():
                keep.append((queues, fut))
        self.items = keep

    def notify_all(self) -> None:
        items, self.items = self.items, []
        for _, fut in items:
            if not fut.done():
                fut.set_result(None)

    async def wait(
        self,
        queues: Iterable[str],
        timeout: float,
        stop: asyncio.Event | None = None,
        *,
        shorten: Callable[[float], Awaitable[float]] | None = None,
    ) -> None:
        """Returns on a notification for one of ``queues``, when ``stop`` is set, or after
        ``timeout``. The waiter is registered before the first ``await``, so no notification
        can slip in between the caller's empty claim and this wait; ``shorten`` (awaited after
        registering) may cut the timeout, e.g. to the next delayed task's eta."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        item = (frozenset(queues), fut)
        self.items.append(item)
        stopper = asyncio.ensure_future(stop.wait()) if stop is not None else None
        try:
            if shorten is not None:
                timeout = await shorten(timeout)
            await asyncio.wait(
                (fut,) if stopper is None else (fut, stopper),
                timeout=timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            if stopper is not None:
                stopper.cancel()
            if not fut.done():
                fut.cancel()
            with contextlib.suppress(ValueError):  # already dropped by notify()
                self.items.remove(item)


__all__ = ["QueueWaiters"]
