"""Finished tasks move out of the file queue's state object into ``done/<task id>`` objects,
so that the state stays small however long the queue runs; they stay readable there."""

from __future__ import annotations

import asyncio

from omniq.models.task import Task, TaskStatus
from omniq.storage.base.listing import cursor_gone
from omniq.storage.file._records import ENCODER, FileParts, copy_rec, read_rec, unref
from omniq.storage.file._state import QueueState, Rec, Txn


class FileArchive(FileParts):
    """Moves succeeded tasks beyond ``keep_finished`` out of the state, and reads them back."""

    _archiving: bool

    async def _maybe_archive(self) -> None:
        """Succeeded tasks beyond ``keep_finished`` move to ``done/<id>`` objects (written
        before the state drops them), so the state object stays small however long the queue
        runs. Failed, cancelled and expired ones stay: they can be requeued."""
        state = self.log.cached
        if self._archiving or state is None or len(state.tasks) <= self.keep_finished:
            return
        done = [r for r in state.tasks.values() if r.task.status is TaskStatus.SUCCESS]
        excess = len(done) - self.keep_finished
        if excess < max(50, self.keep_finished // 4):
            return  # move them in batches, not one write per completion
        self._archiving = True
        try:
            done.sort(key=lambda r: (r.task.finished_at or r.task.created_at, r.seq))
            moving = [copy_rec(r) for r in done[:excess]]
            await asyncio.gather(
                *(
                    self.objects.write(f"{self._root}/done/{r.task.id}", ENCODER.encode(r))
                    for r in moving
                )
            )
            ids = {r.task.id for r in moving}

            def op(state: QueueState, txn: Txn) -> int:
                moved = 0
                for task_id in ids:
                    rec = state.tasks.get(task_id)
                    if rec is None or rec.task.status is not TaskStatus.SUCCESS:
                        continue
                    del state.tasks[task_id]
                    unref(state, txn, rec)
                    counts = state.archived.setdefault(rec.task.queue_name, {})
                    counts[TaskStatus.SUCCESS.value] = counts.get(TaskStatus.SUCCESS.value, 0) + 1
                    moved += 1
                if moved:
                    txn.touch()
                return moved

            await self.log.run(op)
        finally:
            self._archiving = False

    async def _archived(self, task_id: str) -> Task | None:
        found = await self.objects.read(f"{self._root}/done/{task_id}")
        if found is None:
            return None
        return (await self._views([read_rec(task_id, found[0])]))[0]

    async def _archived_exists(self, task_id: str) -> bool:
        return await self.objects.read(f"{self._root}/done/{task_id}") is not None

    async def _list_archived(
        self,
        queue: str | None,
        offset: int,
        limit: int,
        *,
        after: str | None = None,
        descending: bool = False,
    ) -> list[Rec]:
        """Archived tasks in id order (or its reverse), from right after ``after`` if given."""
        if limit <= 0:
            return []
        listed = sorted(
            (o["path"] for o in await self.objects.list(f"{self._root}/done/")),
            reverse=descending,
        )
        if after is not None:
            names = [path.rsplit("/", 1)[-1] for path in listed]
            if after not in names:
                raise cursor_gone(after)
            listed = listed[names.index(after) + 1 :]
        out: list[Rec] = []
        skipped = 0
        for path in listed:
            found = await self.objects.read(path)
            if found is None:
                continue
            rec = read_rec(path.rsplit("/", 1)[-1], found[0])
            if queue is not None and rec.task.queue_name != queue:
                continue
            if skipped < offset:
                skipped += 1
                continue
            out.append(rec)
            if len(out) >= limit:
                break
        return out
