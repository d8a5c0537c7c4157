"""What the parts of the file task queue share: the record helpers, and the payload reads that
turn state records into tasks (claims, readers and the archive all go through them)."""

from __future__ import annotations

import asyncio
from datetime import datetime

import msgspec

from omniq.models.task import Task, TaskStatus, copy_state
from omniq.serialization import Serializer
from omniq.storage.base import decoded_or_shell
from omniq.storage.file._state import QueueState, Rec, StateLog, Txn
from omniq.storage.file._store import ObjectStore

REQUEUEABLE = (TaskStatus.DEAD, TaskStatus.CANCELLED, TaskStatus.EXPIRED, TaskStatus.FAILED)
REC_DECODER = msgspec.msgpack.Decoder(Rec)
ENCODER = msgspec.msgpack.Encoder()


def copy_rec(rec: Rec) -> Rec:
    """A record whose task can be changed without changing the state's."""
    return Rec(msgspec.structs.replace(rec.task), rec.seq, rec.blob, rec.start, rec.end)


def finish(task: Task, status: TaskStatus, now: datetime) -> None:
    task.status = status
    task.finished_at = now
    task.lease_expires_at = None


def unref(state: QueueState, txn: Txn, rec: Rec) -> None:
    """Drop ``rec``'s reference to its payload object; the last one frees the object."""
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
        state alone when the payload cannot be read or decoded."""
        payloads = await self._payloads(recs)
        out = []
        for rec in recs:
            payload = payloads.get(rec.task.id)
            shell = rec.task
            task = (
                decoded_or_shell(self.serializer, payload, lambda s=shell: s, rec.task.id)  # type: ignore[misc]
                if payload is not None
                else shell
            )
            out.append(copy_state(rec.task, task))
        return out
