"""The task queue's required primitives: what every backend writes, each atomic in its store.

:class:`~omniq.storage.base.queue.BaseTaskQueue` builds its public methods (validation, events,
results of outcomes the queue decides itself) on these, once for every backend. They sit in a
module of their own so that a backend's author reads the whole contract on one page; the
docstrings here are that contract (CONTRIBUTING.md, "Adding a backend").
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from datetime import datetime
from typing import TYPE_CHECKING

from omniq.models.task import Task
from omniq.storage.base.capabilities import OptionalSurface
from omniq.storage.base.types import Completion, Failure, HeartbeatStatus

if TYPE_CHECKING:
    from omniq.storage.base.results import BaseResultStorage


class QueuePrimitives(OptionalSurface):
    """The 12 abstract primitives of the required core (``_get_task`` and ``_wait_and_claim`` have
    defaults built on them). Callers use :class:`BaseTaskQueue`'s public methods, never these."""

    @abstractmethod
    async def _enqueue(self, items: list[tuple[Task, bytes]]) -> list[bool]:
        """Stores tasks; an id that already exists is left alone (False in the returned flags)."""

    @abstractmethod
    async def _claim(
        self, queues: list[str], limit: int, worker_id: str | None, lease: float, now: datetime
    ) -> tuple[list[Task], list[Task]]:
        """Atomically claims up to ``limit`` ready tasks. Returns (claimed, ended): tasks that ended
        on the way instead of being claimed, EXPIRED by their TTL or DEAD because their payload
        cannot be decoded."""

    @abstractmethod
    async def _wait_for_tasks(
        self, queues: list[str], timeout: float, stop: asyncio.Event | None
    ) -> None:
        """Returns when a task may be ready in ``queues`` (or a delayed one comes due), when
        ``stop`` is set, or after ``timeout`` seconds; uses the store's native wake-up. The
        subscription must be in place before the first ``await``: an enqueue that lands between
        the caller's empty claim and this wait must still wake it."""

    async def _wait_and_claim(
        self,
        queues: list[str],
        limit: int,
        worker_id: str | None,
        lease: float,
        timeout: float,
        stop: asyncio.Event | None,
    ) -> tuple[list[Task], list[Task]] | None:
        """Waits as :meth:`_wait_for_tasks` does and, where the store can, claims in the same
        round trip as the wake-up: an idle worker then starts a task one round trip sooner.
        Returns what :meth:`_claim` would (claimed, ended), or None when it only waited and the
        caller must claim now (the default). A claim made here must never be lost to ``stop``:
        it is returned, and the worker hands back what it will not run."""
        await self._wait_for_tasks(queues, timeout, stop)
        return None

    @abstractmethod
    async def _heartbeat(
        self, claims: list[tuple[str, str]], lease: float, now: datetime
    ) -> dict[str, HeartbeatStatus]: ...

    @abstractmethod
    async def _complete(
        self,
        completions: list[Completion],
        now: datetime,
        result_storage: BaseResultStorage | None,
    ) -> list[bool]:
        """RUNNING with this claim -> SUCCESS, one flag per completion (False: stale claim).
        ``result_storage`` is given only when :meth:`stores_results_with` said True: the results
        are then written in the same transaction/script, encoded with *its* serializer, and its
        waiters are woken."""

    @abstractmethod
    async def _fail(self, failure: Failure, now: datetime) -> Task | None:
        """RUNNING with this claim -> ``failure.status`` (PENDING at ``retry_at``, DEAD or
        CANCELLED), with the error recorded. None when the claim is stale. The status is decided
        already (:func:`omniq.queue.retry.decide`): the store only records it, atomically with
        the claim check."""

    @abstractmethod
    async def _release(
        self, task_id: str, claim: str, now: datetime, eta: datetime | None = None
    ) -> Task | None:
        """RUNNING with this claim -> PENDING, ready now (or at ``eta`` when given, which then
        becomes its eta), ``attempts`` back down by one; CANCELLED instead when a cancel was
        requested."""

    @abstractmethod
    async def _cancel(self, task_id: str, now: datetime) -> Task | None:
        """PENDING/WAITING -> CANCELLED; RUNNING -> cancel_requested. Returns the task after the
        change (unchanged if final), or None if unknown."""

    @abstractmethod
    async def _get_tasks(self, task_ids: list[str]) -> dict[str, Task]:
        """Many tasks by id (unknown ids are absent), in one round trip."""

    @abstractmethod
    async def _requeue(self, task_id: str, reset_attempts: bool, now: datetime) -> Task | None: ...

    @abstractmethod
    async def _recover_expired(self, now: datetime) -> list[Task]: ...

    @abstractmethod
    async def _expire(self, now: datetime) -> list[Task]: ...

    async def _get_task(self, task_id: str) -> Task | None:
        """Fallback: one id through :meth:`_get_tasks`; a backend may read a single row faster."""
        return (await self._get_tasks([task_id])).get(task_id)
