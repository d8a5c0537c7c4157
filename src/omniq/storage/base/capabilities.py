"""The optional capabilities a task queue may offer beyond the required core."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Any, ClassVar

from omniq.exceptions import UnsupportedCapability
from omniq.models.limits import LimitUsage, RateLimit
from omniq.models.progress import TaskProgress
from omniq.models.schedule import Schedule, ScheduleState
from omniq.models.task import Task, TaskStatus
from omniq.models.worker import WorkerInfo
from omniq.storage.base.component import Component


class Capability(enum.StrEnum):
    DEPENDENCIES = "dependencies"  # depends_on: WAITING tasks released when their parents end
    SCHEDULES = "schedules"  # cron/interval schedules stored beside the tasks
    WORKERS = "workers"  # the worker registry behind `omniq info`
    LISTING = "listing"  # list_tasks, list_dead, get_queue_size, stats, task_functions
    PURGE = "purge"  # deleting the waiting tasks of a queue
    CANCEL_SIGNAL = "cancel_signal"  # a running task's cancellation reaches its worker at once
    PROGRESS = "progress"  # a running task's progress kept in its record, under its claim
    LIMITS = "limits"  # rate limits and key concurrency limits shared by all workers


def unsupported(backend: str, owner: str, capability: Capability) -> UnsupportedCapability:
    """The error for a caller that asked a backend for what it does not offer."""
    return UnsupportedCapability(
        f"the {backend!r} backend ({owner}) does not offer the {capability.value!r} capability"
    )


class OptionalSurface(Component):
    """The public methods of every optional capability, as a task queue without it answers them:
    a clear :class:`~omniq.exceptions.UnsupportedCapability`. The capability mixins override
    them; which mixins a class inherits is its declaration of what it offers."""

    #: Set by each capability mixin on itself; read through :meth:`capabilities`.
    provides: ClassVar[Capability | None] = None
    #: True where ``list_tasks(func=...)`` and ``task_functions`` read an index (their cost does
    #: not grow with the store); False where they read the tasks (see ``SupportsListing``).
    lists_by_function: ClassVar[bool] = False

    @classmethod
    def capabilities(cls) -> frozenset[Capability]:
        return frozenset(
            c.__dict__["provides"] for c in cls.__mro__ if c.__dict__.get("provides") is not None
        )

    def supports(self, capability: Capability | str) -> bool:
        return Capability(capability) in self.capabilities()

    def _unsupported(self, capability: Capability) -> UnsupportedCapability:
        return unsupported(self.backend_name, type(self).__name__, capability)

    # -- dependencies: a store without them never holds a WAITING task ---------------------
    async def _check_dependencies(self, batch: list[Task], dependents: list[Task]) -> None:
        raise self._unsupported(Capability.DEPENDENCIES)

    async def _settle(self, waiting: list[Task]) -> int:
        raise self._unsupported(Capability.DEPENDENCIES)

    async def _settle_dependents(self, finished: Sequence[str]) -> None:
        """Nothing can wait on a finished task where dependencies are not offered."""

    async def settle_waiting(self, limit: int = 1000) -> int:
        """Nothing waits where dependencies are not offered: the sweep has nothing to do."""
        return 0

    # -- cancel signal: without it a worker sees the request at its next heartbeat ----------
    async def _cancel_requested(self, task: Task) -> None:
        """Nothing to publish: the worker learns of the request when it renews its lease."""

    def cancel_signals(self) -> AsyncIterator[str]:
        raise self._unsupported(Capability.CANCEL_SIGNAL)

    # -- progress ---------------------------------------------------------------------------
    async def set_progress(self, task_id: str, claim: str, progress: TaskProgress) -> bool:
        raise self._unsupported(Capability.PROGRESS)

    async def set_progress_many(
        self, reports: Sequence[tuple[str, str, TaskProgress]]
    ) -> list[bool]:
        raise self._unsupported(Capability.PROGRESS)

    # -- limits: without them a task carrying one is refused at enqueue ---------------------
    async def take_token(self, key: str, limit: RateLimit) -> float:
        raise self._unsupported(Capability.LIMITS)

    async def acquire_slot(self, key: str, holder: str, limit: int, ttl: float) -> bool:
        raise self._unsupported(Capability.LIMITS)

    async def release_slot(self, key: str, holder: str) -> None:
        raise self._unsupported(Capability.LIMITS)

    async def limit_usage(self) -> LimitUsage:
        raise self._unsupported(Capability.LIMITS)

    async def sweep_limits(self) -> int:
        """Nothing to sweep in a store that keeps no limits (the worker's upkeep calls it on
        every store)."""
        return 0

    # -- listing ----------------------------------------------------------------------------
    async def list_tasks(
        self,
        queue: str | None = None,
        status: TaskStatus | str | None = None,
        limit: int = 100,
        offset: int = 0,
        *,
        after: str | None = None,
        descending: bool = False,
        func: str | Sequence[str] | None = None,
    ) -> list[Task]:
        raise self._unsupported(Capability.LISTING)

    async def task_functions(self, limit: int = 1000) -> list[str]:
        raise self._unsupported(Capability.LISTING)

    async def list_dead(
        self,
        queue: str | None = None,
        *,
        limit: int = 100,
        offset: int = 0,
        after: str | None = None,
        descending: bool = False,
    ) -> list[Task]:
        raise self._unsupported(Capability.LISTING)

    async def get_queue_size(self, queue: str = "default") -> int:
        raise self._unsupported(Capability.LISTING)

    async def stats(self) -> dict[str, dict[str, int]]:
        raise self._unsupported(Capability.LISTING)

    async def purge(
        self,
        queue: str | None = "default",
        *,
        statuses: Iterable[TaskStatus | str] = (TaskStatus.PENDING, TaskStatus.WAITING),
    ) -> int:
        raise self._unsupported(Capability.PURGE)

    async def purge_dead(self, queue: str | None = None) -> int:
        raise self._unsupported(Capability.PURGE)

    # -- worker registry ----------------------------------------------------------------------
    async def register_worker(self, info: WorkerInfo, ttl: float) -> None:
        raise self._unsupported(Capability.WORKERS)

    async def unregister_worker(self, worker_id: str) -> bool:
        raise self._unsupported(Capability.WORKERS)

    async def list_workers(self) -> list[WorkerInfo]:
        raise self._unsupported(Capability.WORKERS)

    # -- schedules ----------------------------------------------------------------------------
    async def save_schedule(self, schedule: Schedule) -> str:
        raise self._unsupported(Capability.SCHEDULES)

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        raise self._unsupported(Capability.SCHEDULES)

    async def list_schedules(self, state: ScheduleState | str | None = None) -> list[Schedule]:
        raise self._unsupported(Capability.SCHEDULES)

    async def pause_schedule(self, schedule_id: str) -> bool:
        raise self._unsupported(Capability.SCHEDULES)

    async def resume_schedule(self, schedule_id: str) -> bool:
        raise self._unsupported(Capability.SCHEDULES)

    async def delete_schedule(self, schedule_id: str) -> bool:
        raise self._unsupported(Capability.SCHEDULES)

    async def claim_due_schedules(self, now: datetime | None = None) -> list[Schedule]:
        raise self._unsupported(Capability.SCHEDULES)

    async def advance_schedule(
        self, schedule_id: str, expected_next_run_at: datetime | None, changes: dict[str, Any]
    ) -> bool:
        raise self._unsupported(Capability.SCHEDULES)
