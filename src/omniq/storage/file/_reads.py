"""Reads of the file task queue (get, list, sizes, stats) and the purge: each one a pass over
the state object, the archive (``_archive.py``) answering for tasks moved out of it."""

from __future__ import annotations

import asyncio

from omniq.models.task import Task, TaskStatus
from omniq.storage.base.listing import cursor_gone
from omniq.storage.file._archive import FileArchive
from omniq.storage.file._records import copy_rec, unref
from omniq.storage.file._state import QueueState, Rec, Txn


class FileReads(FileArchive):
    """The reading primitives of the file task queue, and the purge."""

    async def _get_tasks(self, task_ids: list[str]) -> dict[str, Task]:
        def op(state: QueueState, txn: Txn) -> list[Rec]:
            return [copy_rec(r) for i in task_ids if (r := state.tasks.get(i)) is not None]

        recs = await self.log.run(op)
        found = {t.id: t for t in await self._views(recs)}
        missing = [i for i in task_ids if i not in found]
        if missing:
            for task in await asyncio.gather(*(self._archived(i) for i in missing)):
                if task is not None:
                    found[task.id] = task
        return found

    async def _list_tasks(
        self,
        queue: str | None,
        status: TaskStatus | None,
        limit: int,
        offset: int,
        after: str | None = None,
        descending: bool = False,
    ) -> list[Task]:
        """The live tasks in enqueue order (or newest first), then the succeeded tasks moved to
        ``done/`` (in id order, or its reverse)."""

        def op(state: QueueState, txn: Txn) -> tuple[list[Rec], int | None]:
            recs = sorted(
                (
                    copy_rec(r)
                    for r in state.tasks.values()
                    if (queue is None or r.task.queue_name == queue)
                    and (status is None or r.task.status is status)
                ),
                key=lambda r: r.seq,
                reverse=descending,
            )
            cursor = state.tasks.get(after) if after is not None else None
            return recs, cursor.seq if cursor is not None else None

        recs, mark = await self.log.run(op)
        archived_after = None
        if mark is not None:
            # the cursor need not match the filters: its place in the whole order counts
            recs = [r for r in recs if (r.seq < mark if descending else r.seq > mark)]
        elif after is not None:  # not a live task: an archived one, or gone
            recs, archived_after = [], after
        page = recs[offset : offset + limit]
        if len(page) < limit and status in (None, TaskStatus.SUCCESS):
            page.extend(
                await self._list_archived(
                    queue,
                    max(0, offset - len(recs)),
                    limit - len(page),
                    after=archived_after,
                    descending=descending,
                )
            )
        elif archived_after is not None and not await self._archived_exists(archived_after):
            raise cursor_gone(archived_after)
        return await self._views(page)

    async def _queue_size(self, queue: str) -> int:
        def op(state: QueueState, txn: Txn) -> int:
            return sum(
                1
                for r in state.tasks.values()
                if r.task.queue_name == queue and r.task.status is TaskStatus.PENDING
            )

        return await self.log.run(op)

    async def _stats(self) -> dict[str, dict[str, int]]:
        def op(state: QueueState, txn: Txn) -> dict[str, dict[str, int]]:
            out: dict[str, dict[str, int]] = {}
            for queue, counts in state.archived.items():
                for name, n in counts.items():
                    if n:
                        out.setdefault(queue, {})[name] = n
            for r in state.tasks.values():
                counts = out.setdefault(r.task.queue_name, {})
                counts[r.task.status.value] = counts.get(r.task.status.value, 0) + 1
            return out

        return await self.log.run(op)

    async def _purge(self, queue: str | None, statuses: frozenset[TaskStatus]) -> int:
        def op(state: QueueState, txn: Txn) -> int:
            doomed = [
                r
                for r in state.tasks.values()
                if (queue is None or r.task.queue_name == queue) and r.task.status in statuses
            ]
            for rec in doomed:
                del state.tasks[rec.task.id]
                unref(state, txn, rec)
            if doomed:
                txn.touch()
            return len(doomed)

        return await self.log.run(op)
