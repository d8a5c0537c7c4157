"""The worker's side of rate limits and key concurrency limits (omniq.models.limits).

A claimed task that carries a limit (its ``rate_limit``, its ``concurrency_key``, or a rate
limit of its queue in the worker's ``rate_limits``) asks the store before it runs: a token from
the bucket of its task name and of its queue, then a slot under its key. A task held back is
handed back with an eta (``release(..., eta=...)``): it stays PENDING, its attempt does not
count, and the worker goes on with other tasks. A task without limits costs one attribute test.

Deferred tasks are spread: the ones a worker holds back for one key get etas one token apart
(the store still decides, so a guess that was too early only defers the task again), and while
the store has said a bucket is empty the worker defers its tasks without asking again.

A task refused a concurrency slot first waits in the worker, for as long as it would otherwise
be deferred (``SLOT_RETRY``), and is woken at once when a task of this process releases a slot
of its key; only then, still refused, is it handed back. A few tasks wait so (as many per key
as the key's limit, half the worker's concurrency in all), since a waiting task takes one of
the worker's places; the rest are handed back at once as before.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from omniq.config import get_logger
from omniq.models.limits import RateLimit, parse_rate_limit
from omniq.models.task import Task
from omniq.storage.base import BaseTaskQueue, Capability

log = get_logger("worker")

#: seconds before a task refused a concurrency slot is tried again, and between the retries of
#: the tasks one worker holds back for one key
SLOT_RETRY = 0.1
SLOT_SPACING = 0.05
#: keys remembered per worker before the ones whose time has passed are forgotten (a key per
#: user must not grow a long-running worker's memory without bound)
_REMEMBERED = 4096


def queue_rate_limits(value: Mapping[str, str | RateLimit] | None) -> dict[str, RateLimit]:
    """The worker's ``rate_limits`` (queue name -> "100/m"), checked when the worker is made."""
    from omniq.queue.builder import validate_queue_name

    if not value:
        return {}
    return {
        validate_queue_name(queue): parse_rate_limit(rate, f"rate limit of queue {queue!r}")
        for queue, rate in value.items()
    }


class LimitGate:
    """Admits claimed tasks under their limits, and keeps the slots of those it admitted."""

    def __init__(
        self, queue: BaseTaskQueue, queue_limits: dict[str, RateLimit], max_waiting: int = 1
    ) -> None:
        if queue_limits and not queue.supports(Capability.LIMITS):
            raise queue._unsupported(Capability.LIMITS)
        self.queue = queue
        self.queue_limits = queue_limits
        #: concurrency key -> the tasks waiting here for a slot of it (see the module docstring)
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._waiting = 0
        self._max_waiting = max_waiting
        #: key -> wall time until which the store said the bucket is empty
        self._empty_until: dict[str, float] = {}
        #: key -> the eta the next task this worker holds back for it gets
        self._horizon: dict[str, float] = {}
        #: task id -> (concurrency key, holder, limit) of the slots held by tasks running here
        self.held: dict[str, tuple[str, str, int]] = {}

    def applies(self, task: Task) -> bool:
        return (
            task.rate_limit is not None
            or task.concurrency_key is not None
            or task.queue_name in self.queue_limits
        )

    async def admit(self, task: Task, lease: float) -> datetime | None:
        """None: run ``task`` now (holding its slot, if it has a key); else when to try again."""
        buckets: list[tuple[str, RateLimit]] = []
        queue_limit = self.queue_limits.get(task.queue_name)
        if queue_limit is not None:
            buckets.append((f"queue:{task.queue_name}", queue_limit))
        if task.rate_limit is not None:
            buckets.append((f"task:{task.func}", parse_rate_limit(task.rate_limit)))
        if len(self._horizon) > _REMEMBERED:
            self._forget_past()
        for key, limit in buckets:
            retry_at = await self._take(key, limit)
            if retry_at is not None:
                return _as_time(retry_at)
        if task.concurrency_key is not None:
            key, holder = task.concurrency_key, task.claim or task.id
            limit_n = task.concurrency_limit or 1
            granted = await self.queue.acquire_slot(key, holder, limit_n, lease)
            if not granted and self._may_wait(key, limit_n):
                await self._slot_freed(key, SLOT_RETRY * (1 + random.random()))
                granted = await self.queue.acquire_slot(key, holder, limit_n, lease)
            if not granted:
                now = time.time()
                at = max(self._horizon.get(key, 0.0), now + SLOT_RETRY * (1 + random.random()))
                self._horizon[key] = at + SLOT_SPACING
                return _as_time(at)
            self.held[task.id] = (key, holder, limit_n)
        return None

    def _may_wait(self, key: str, limit: int) -> bool:
        return self._waiting < self._max_waiting and len(self._waiters.get(key, ())) < limit

    async def _slot_freed(self, key: str, longest: float) -> None:
        """Returns when a task of this process releases a slot of ``key``, or after ``longest``
        seconds (a slot freed by another process is found by asking the store again)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(key, [])
        waiters.append(waiter)
        self._waiting += 1
        try:
            async with asyncio.timeout(longest):
                await waiter
        except TimeoutError:
            pass
        finally:
            self._waiting -= 1
            waiters.remove(waiter)
            if not waiters and self._waiters.get(key) is waiters:
                del self._waiters[key]

    def _wake(self, key: str) -> None:
        """A slot of ``key`` was released here: the first task waiting for one tries now."""
        for waiter in self._waiters.get(key, ()):
            if not waiter.done():
                waiter.set_result(None)
                return

    def _forget_past(self) -> None:
        now = time.time()
        for memory in (self._horizon, self._empty_until):
            for key in [k for k, at in memory.items() if at <= now]:
                del memory[key]

    async def _take(self, key: str, limit: RateLimit) -> float | None:
        """None when a token was taken; else the (wall) time to try the task again."""
        now = time.time()
        if self._empty_until.get(key, 0.0) <= now:
            wait = await self.queue.take_token(key, limit)
            if not wait:
                return None
            self._empty_until[key] = now + wait
        at = max(self._horizon.get(key, 0.0), self._empty_until[key])
        self._horizon[key] = at + limit.interval
        return at

    async def release(self, task_id: str) -> None:
        """Gives back the slot a task held (it ended, or was handed back)."""
        held = self.held.pop(task_id, None)
        if held is None:
            return
        try:
            await self.queue.release_slot(held[0], held[1])
            self._wake(held[0])
        except Exception as exc:  # the slot lapses with the lease it was given
            log.warning(
                "could not release the concurrency slot %r of task %s (%s: %s); it lapses when "
                "its lease would have",
                held[0],
                task_id,
                type(exc).__name__,
                exc,
            )

    async def renew(self, lease: float) -> None:
        """Keeps the slots of long-running tasks (called with the heartbeat)."""
        for key, holder, limit in list(self.held.values()):
            await self.queue.acquire_slot(key, holder, limit, lease)


def _as_time(wall: float) -> datetime:
    return datetime.fromtimestamp(wall, UTC)


__all__ = ["LimitGate", "queue_rate_limits"]
