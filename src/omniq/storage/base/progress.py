"""Capability: progress. A running task's last report (``omniq.current_task().set_progress``)
is kept in its record beside the state, written only under the task's claim: a worker whose
lease ran out, and whose task another worker holds now, is refused like its acknowledgement
would be. A backend writes one primitive, ``_set_progress``, and lays the stored bytes over
the tasks it reads with :func:`lay_progress`.

The bytes are the serializer's envelope of the progress (msgpack only, signed where payloads
are, bounded in size; see ``Serializer.encode_progress``), so every backend stores and returns
the same value. The worker coalesces reports (see ``omniq.workers._progress``), so a task that
reports in a tight loop costs the store a few writes a second, and one that never reports
costs nothing.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from omniq.config import get_logger
from omniq.exceptions import SerializationError
from omniq.models.progress import TaskProgress
from omniq.models.task import Task
from omniq.serialization import Serializer
from omniq.storage.base.capabilities import Capability
from omniq.storage.base.queue import BaseTaskQueue

log = get_logger("storage")


def lay_progress(serializer: Serializer, task: Task, raw: bytes | None) -> Task:
    """``task`` with the progress stored as ``raw`` (None: never reported). Readers never fail
    on it: progress that does not decode (damaged, or signed with another key) reads as none,
    and is logged, so that the task itself is still listed and shown."""
    if raw is None:
        return task
    try:
        task.progress = serializer.decode_progress(raw, task.id)
    except (SerializationError, ValueError, TypeError) as exc:
        log.warning("task %s: its stored progress cannot be read (%s); shown as none", task.id, exc)
        task.progress = None
    return task


class SupportsProgress(BaseTaskQueue):
    """Offers keeping a running task's progress in its record."""

    provides: ClassVar[Capability | None] = Capability.PROGRESS

    async def set_progress(self, task_id: str, claim: str, progress: TaskProgress) -> bool:
        """Stores ``progress`` for running task ``task_id`` if ``claim`` is still its claim;
        False when it is not (the lease was lost, the task ended). See :meth:`set_progress_many`."""
        return (await self.set_progress_many([(task_id, claim, progress)]))[0]

    async def set_progress_many(
        self, reports: Sequence[tuple[str, str, TaskProgress]]
    ) -> list[bool]:
        """Stores the progress of many running tasks in one round trip, each under its claim:
        one flag per report, False where the claim is stale (nothing is written for it).
        Encoding errors (data that is not plain, too large) are raised before anything is
        written."""
        if not reports:
            return []
        encode = self.serializer.encode_progress
        items = [(task_id, claim, encode(p, task_id)) for task_id, claim, p in reports]
        await self._ensure()
        return await self._set_progress(items)

    @abstractmethod
    async def _set_progress(self, items: list[tuple[str, str, bytes]]) -> list[bool]:
        """For each (task id, claim, encoded progress): when the task is RUNNING under that
        claim, its stored progress becomes the bytes (True); otherwise nothing changes (False).
        Each item is atomic with its claim check."""


__all__ = ["SupportsProgress", "lay_progress"]
