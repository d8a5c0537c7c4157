"""Capability: dependencies (``depends_on``). A task stored WAITING becomes PENDING when its
dependencies succeed, or CANCELLED when one of them fails (unless its policy says run anyway).

A backend writes ``_promote`` and ``_cancel_waiting`` (compare-and-set transitions) and, through
:class:`SupportsListing` which this capability builds on, ``_list_tasks``. ``_dependents`` falls
back to scanning the WAITING tasks; a backend with an index answers it cheaper.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from datetime import datetime
from typing import ClassVar

from omniq._time import utcnow
from omniq.config import get_logger
from omniq.exceptions import TaskNotFound
from omniq.models.event import EventType
from omniq.models.task import DependencyPolicy, Task, TaskStatus
from omniq.storage.base.capabilities import Capability
from omniq.storage.base.listing import SupportsListing

log = get_logger("storage")


def dependency_verdict(task: Task, deps: dict[str, Task]) -> bool | str | None:
    """What a WAITING task's dependencies say: True (run it), a reason (cancel it), or None
    (keep waiting). A dependency that no longer exists counts as failed: nobody can tell."""
    run_anyway = task.dependency_policy is DependencyPolicy.RUN_ANYWAY
    pending = False
    for dep_id in task.depends_on:
        dep = deps.get(dep_id)
        if dep is None:
            if not run_anyway:
                return f"dependency {dep_id} no longer exists"
            continue
        if dep.status is TaskStatus.SUCCESS:
            continue
        if dep.status.is_final:
            if not run_anyway:
                return f"dependency {dep_id} ended {dep.status.value}"
            continue
        pending = True
    return None if pending else True


class SupportsDependencies(SupportsListing):
    """Offers ``depends_on``: WAITING tasks, settled when their dependencies end."""

    provides: ClassVar[Capability | None] = Capability.DEPENDENCIES

    async def _check_dependencies(self, batch: list[Task], dependents: list[Task]) -> None:
        in_batch = {t.id for t in batch}
        for task in dependents:
            if len(set(task.depends_on)) != len(task.depends_on):
                raise ValueError(f"task {task.id!r} lists a dependency twice: {task.depends_on!r}")
            if task.id in task.depends_on:
                raise ValueError(f"task {task.id!r} depends on itself")
        outside = sorted({d for t in dependents for d in t.depends_on} - in_batch)
        if outside:
            found = await self._get_tasks(outside)
            for task in dependents:
                for dep in task.depends_on:
                    if dep not in in_batch and dep not in found:
                        raise TaskNotFound(f"task {task.id!r} depends on unknown task {dep!r}")
        from omniq.workflows.graph import find_cycle

        cycle = find_cycle({t.id: [d for d in t.depends_on if d in in_batch] for t in batch})
        if cycle:
            raise ValueError(f"dependency cycle: {' -> '.join(cycle)}")

    async def _settle_dependents(self, finished: Sequence[str]) -> None:
        """Moves on the WAITING tasks that depend on tasks which just reached a final state.

        Every caller runs this *after* its own transition is stored, so of two dependencies
        finishing at the same time at least one sees the other final; the store's
        compare-and-set (WAITING -> PENDING/CANCELLED) makes sure only one acts. A process that
        dies between the two steps leaves the dependent WAITING until the next
        :meth:`settle_waiting` sweep (every worker runs one in its upkeep loop).
        """
        if not finished:
            return
        try:
            waiting = await self._dependents(list(finished))
            if waiting:
                await self._settle(waiting)
        except Exception as exc:
            # the transition itself is stored: failing its caller now would only mislead it (a
            # worker would re-send acknowledgements that already landed)
            log.warning(
                "settling the dependents of %d finished tasks failed (%s: %s); the upkeep sweep "
                "will retry",
                len(finished),
                type(exc).__name__,
                exc,
            )

    async def settle_waiting(self, limit: int = 1000) -> int:
        """The crash-safety sweep: settles up to ``limit`` WAITING tasks whose dependencies have
        all finished. Returns how many moved on."""
        await self._ensure()
        waiting = await self._list_tasks(None, TaskStatus.WAITING, limit, 0)
        return await self._settle(waiting) if waiting else 0

    async def _settle(self, waiting: list[Task]) -> int:
        moved = 0
        while waiting:
            deps = await self._get_tasks(sorted({d for t in waiting for d in t.depends_on}))
            ready: list[str] = []
            doomed: list[tuple[str, str]] = []
            for task in waiting:
                verdict = dependency_verdict(task, deps)
                if verdict is True:
                    ready.append(task.id)
                elif isinstance(verdict, str):
                    doomed.append((task.id, verdict))
            now = utcnow()
            for task in await self._promote(ready, now) if ready else []:
                moved += 1
                self._emit(EventType.ENQUEUED, task, reason="dependencies met")
            cancelled = await self._cancel_waiting(doomed, now) if doomed else []
            for task in cancelled:
                moved += 1
                self._emit(EventType.DEPENDENCY_FAILED, task, reason=task.error_message)
                self._emit(EventType.CANCELLED, task, reason=task.error_message)
            await self._write_final_results(cancelled)
            # a cancelled dependent is final too: its own dependents follow (a cascade)
            waiting = await self._dependents([t.id for t in cancelled]) if cancelled else []
        return moved

    @abstractmethod
    async def _promote(self, task_ids: list[str], now: datetime) -> list[Task]:
        """WAITING -> PENDING (ready at once, or at its ``eta``), waking claimers. Ids that are
        not WAITING (any more) are left alone. Returns the tasks that moved, after the change."""

    @abstractmethod
    async def _cancel_waiting(self, items: list[tuple[str, str]], now: datetime) -> list[Task]:
        """WAITING -> CANCELLED for each (id, reason): ``error_type`` 'DependencyFailed',
        ``error_message`` the reason. Ids not WAITING are left alone. Returns the tasks that
        moved, after the change."""

    async def _dependents(self, task_ids: list[str]) -> list[Task]:
        """The WAITING tasks whose ``depends_on`` names any of ``task_ids``. This runs after
        every acknowledgement batch; this fallback scans every WAITING task, so a backend with an
        index (or a completion that can tell nothing waits, see SQLite and Redis) overrides it."""
        wanted = set(task_ids)
        return [
            t
            async for t in self._scan(None, TaskStatus.WAITING)
            if wanted.intersection(t.depends_on)
        ]
