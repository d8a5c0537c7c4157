"""What the parts of the file task queue share: the record helpers, and the payload reads that
turn state records into tasks (claims, readers and the archive all go through them)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

import msgspec

from omniq.models.task import Task, TaskStatus, copy_state
from omniq.serialization import Serializer
from omniq.storage.base import lay_progress, record_view
from omniq.storage.file._state import QueueState, Rec, StateLog, Txn, decode_rec
from omniq.storage.file._store import ObjectStore

REQUEUEABLE = (TaskStatus.DEAD, TaskStatus.CANCELLED, TaskStatus.EXPIRED, TaskStatus.FAILED)
REC_DECODER = msgspec.msgpack.Decoder(Rec)
ENCODER = msgspec.msgpack.Encoder()


def copy_rec(rec: Rec) -> Rec:
    """A record whose task can be changed without changing the state's."""
    return Rec(
        msgspec.structs.replace(rec.task), rec.seq, rec.blob, rec.start, rec.end, rec.progress
    )


def read_rec(task_id: str, data: bytes) -> Rec:
    """An archived record (``done/<task id>``); one that does not read is a corrupt record
    (see ``decode_rec``), never an error for the listing it is part of."""
    try:
        return REC_DECODER.decode(data)
    except msgspec.ValidationError:
        return decode_rec(task_id, msgspec.msgpack.decode(data))


def laid(rec: Rec, serializer: Serializer | None = None) -> Callable[[Task], Task]:
    """What lays ``rec``'s stored state over its decoded payload: the state fields, and the
    queue, which claims and counts go by (``record_view``/``decoded_state`` check both); with
    ``serializer``, the progress too (readers)."""

    def lay(task: Task) -> Task:
        copy_state(rec.task, task)
        task.queue_name = rec.task.queue_name
        if serializer is not None:
            lay_progress(serializer, task, rec.progress)
        return task

    return lay


def finish(task: Task, status: TaskStatus, now: datetime) -> None:
    task.status = status
    task.finished_at = now
    task.lease_expires_at = None


def unref(state: QueueState, txn: Txn, rec: Rec) -> None:
    """Drop ``rec``'s reference to its payload object; the last one frees the object."""
    if not rec.blob:
        return  # a corrupt record that points into no payload object
    left = state.blobs.get(rec.blob, 0) - 1
    if left > 0:
        state.blobs[rec.blob] = left
    else:
        state.blobs.pop(rec.blob, None)
        txn.freed.add(rec.blob)


class FileParts:
    """Base of the file task queue's parts (``AsyncFileQueue`` sets these attributes)."""

    objects: ObjectStore
    log: StateLog
    serializer: Serializer
    keep_finished: int
    _root: str

    async def _payloads(self, recs: list[Rec]) -> dict[str, bytes]:
        """The payload bytes of ``recs`` (one ranged read per payload object)."""
        by_blob: dict[str, list[Rec]] = {}
        for rec in recs:
            if rec.blob:  # a corrupt record may point into no payload object
                by_blob.setdefault(rec.blob, []).append(rec)

        async def one(blob: str, group: list[Rec]) -> list[tuple[str, bytes]]:
            got = await self.objects.read_ranges(
                f"{self._root}/payloads/{blob}", [(r.start, r.end) for r in group]
            )
            if got is None:
                return []
            return [(r.task.id, data) for r, data in zip(group, got, strict=True)]

        found: dict[str, bytes] = {}
        for pairs in await asyncio.gather(*(one(b, g) for b, g in by_blob.items())):
            found.update(pairs)
        return found

    async def _views(self, recs: list[Rec]) -> list[Task]:
        """What readers see: the decoded payload with the state laid over it, or the stored
        state alone when the payload cannot be read or decoded; a record whose state does not
        read (a queue name that is no queue name) as DEAD with the reason (``record_view``).
        ``recs`` are the readers' own copies (their tasks are laid over, never the state's)."""
        payloads = await self._payloads(recs)
        return [
            record_view(
                self.serializer,
                payloads.get(rec.task.id, b""),  # no payload: the shell, as for a poison one
                lambda s=rec.task: s,  # type: ignore[misc]
                rec.task.id,
                laid(rec, self.serializer),
            )
            for rec in recs
        ]
