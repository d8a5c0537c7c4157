"""The queue state object and its compare-and-set engine with group commit.

The whole queue of a project (every unfinished task's state, recently finished ones, schedules)
is ONE object, ``<prefix>/<project>/state``, after turbopuffer's object-storage queue. Arguments
are not in it: they sit in immutable payload objects that the state points into. Every change is
a pure function of the state (an *op*) applied to the last state this process saw and written
back only if the object is still the one it read: If-Match on its etag, or If-None-Match when it
does not exist yet (see ``ObjectStore.swap``). Losing that race means re-reading and applying
the ops again, so two processes can never both claim one task.

Group commit: ops that arrive while a write is in flight wait and go together in the next one,
so under load one conditional write carries many enqueues, claims and acknowledgements. A batch
that changes nothing (a claim that finds no task) costs one conditional read (If-None-Match:
an unchanged state answers 304 without a body), never a write.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

import msgspec

from omniq._time import utcnow
from omniq.config import get_logger
from omniq.models.task import Task
from omniq.storage.base import as_corrupt
from omniq.storage.file._store import Conflict, ObjectStore

log = get_logger("storage.file")

T = TypeVar("T")


class Rec(msgspec.Struct, array_like=True):
    """One task in the state: its state of record (arguments stripped), its enqueue order, and
    where its payload is (a byte range of an immutable payload object), and the progress the
    running task last reported (an envelope; see SupportsProgress)."""

    task: Task
    seq: int
    blob: str
    start: int
    end: int
    progress: bytes | None = None


class QueueState(msgspec.Struct, kw_only=True):
    format: int = 1
    seq: int = 0
    tasks: dict[str, Rec] = msgspec.field(default_factory=dict)
    #: payload object -> how many tasks in ``tasks`` still point into it
    blobs: dict[str, int] = msgspec.field(default_factory=dict)
    #: schedule id -> its encoded schedule
    schedules: dict[str, bytes] = msgspec.field(default_factory=dict)
    #: queue -> status -> finished tasks moved out to archive objects (for stats)
    archived: dict[str, dict[str, int]] = msgspec.field(default_factory=dict)
    #: "<kind>:<key>" -> a rate-limit bucket or concurrency key (see RecordLimits)
    limits: dict[str, bytes] = msgspec.field(default_factory=dict)


@dataclass
class Txn:
    """What one application of a batch of ops produced besides the state itself."""

    now: datetime
    changed: bool = False
    #: queues that got a ready task (local claimers are woken after the write lands)
    woken: set[str] = field(default_factory=set)
    #: payload objects no task points into any more (deleted after the write lands)
    freed: set[str] = field(default_factory=set)

    def touch(self) -> None:
        self.changed = True


Op = Callable[[QueueState, Txn], T]

_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(QueueState)
_FIELD = re.compile(r"at `\$\.(\w+)`")


def decode_state(data: bytes) -> QueueState:
    """The state object ``data``; one task record in it that does not read (a status that is no
    status, attempts that are no number: written by something other than OmniQ, or damaged)
    does not make the whole object unreadable. That record is kept as DEAD, with error_type
    "CorruptRecord" and the reason (``as_corrupt``, the rule of every backend), so it is listed
    for what it is and never claimed, and the next write stores it so. Damage outside the task
    records (the object is no msgpack, its counters are no numbers) still raises."""
    try:
        return _DECODER.decode(data)
    except msgspec.ValidationError:
        raw = msgspec.msgpack.decode(data)
    if not isinstance(raw, dict) or not isinstance(raw.get("tasks"), dict):
        return _DECODER.decode(data)  # not a damaged task record: say what is damaged
    tasks = raw.pop("tasks")
    state = msgspec.convert(raw, QueueState)
    state.tasks = {str(task_id): decode_rec(str(task_id), rec) for task_id, rec in tasks.items()}
    return state


def decode_rec(task_id: str, raw: Any) -> Rec:
    """The record ``raw`` (decoded untyped) of task ``task_id``, or, when it does not read, its
    fields that do with the task made DEAD as a corrupt record (see :func:`decode_state`)."""
    try:
        return msgspec.convert(raw, Rec)
    except msgspec.ValidationError as exc:
        first = str(exc)
    parts = raw if isinstance(raw, list) else [raw]
    task, problems = _readable_task(task_id, parts[0] if parts else None)
    try:
        seq, blob, start, end = msgspec.convert(parts[1:5], tuple[int, str, int, int])
    except msgspec.ValidationError as exc:
        seq, blob, start, end = 0, "", 0, 0  # no payload to point into
        problems.append(f"its payload reference {parts[1:]!r} is not one ({exc})")
    progress = parts[5] if len(parts) > 5 and isinstance(parts[5], bytes) else None
    return Rec(as_corrupt(task, "; ".join(problems or [first])), seq, blob, start, end, progress)


def _readable_task(task_id: str, fields: Any) -> tuple[Task, list[str]]:
    """The task the fields that read make (each other one left at its default: the queue, the
    function and the times are kept where they read), and what was wrong with each."""
    problems: list[str] = []
    if not isinstance(fields, dict):
        return Task(func="?", id=task_id), [f"the task {fields!r} is not a map of fields"]
    fields = {**fields, "id": task_id}
    while True:
        try:
            return msgspec.convert(fields, Task), problems
        except msgspec.ValidationError as exc:
            found = _FIELD.search(str(exc))
            name = found.group(1) if found is not None else None
            if name is None or name not in fields or name in ("id", "func"):
                problems.append(str(exc))
                return Task(func="?", id=task_id, **_queue(fields)), problems
            problems.append(f"{name} {fields.pop(name)!r} is not valid ({exc})")


def _queue(fields: dict[str, Any]) -> dict[str, Any]:
    queue = fields.get("queue_name")
    return {"queue_name": queue} if isinstance(queue, str) else {}


@dataclass
class _Pending(Generic[T]):
    op: Op[T]
    future: asyncio.Future[T]


class StateLog:
    """The one writer of a state object in this process; see the module docstring."""

    #: Give up after this many lost races in a row: something is writing without pause.
    MAX_CONFLICTS = 200

    def __init__(
        self,
        store: ObjectStore,
        key: str,
        on_commit: Callable[[Txn], None] | None = None,
    ) -> None:
        self.store = store
        self.key = key
        self.on_commit = on_commit
        self._state: QueueState | None = None
        self._etag: str | None = None
        self._pending: list[_Pending[Any]] = []
        self._committer: asyncio.Task[None] | None = None
        self.commits = 0
        self.conflicts = 0

    @property
    def cached(self) -> QueueState | None:
        """The last state this process saw (may be stale; for wake-up deadlines only)."""
        return self._state

    async def open(self) -> None:
        """Reads the state, creating it if absent: a store that cannot be read or written is
        reported now, at start, rather than at the first task."""
        await self._reload()
        if self._etag is None and self._state is not None and not self._state.tasks:
            try:
                self._etag = await self.store.swap(self.key, _ENCODER.encode(self._state), None)
            except Conflict:
                await self._reload()

    async def run(self, op: Op[T]) -> T:
        """Applies ``op`` in the next group commit and returns what it returned, once the write
        (if it changed anything) has landed."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(op, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._drain())
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._commit(batch)
            except BaseException as exc:
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise

    async def _reload(self) -> None:
        found = await self.store.read(self.key)
        if found is None:
            self._state, self._etag = QueueState(), None
        else:
            self._state, self._etag = decode_state(found[0]), found[1]

    async def _refresh(self) -> bool:
        """Re-reads the state if it changed since it was read; True if it did."""
        found = await self.store.read_if_changed(self.key, self._etag)
        if found is False:
            return False
        if found is None:
            self._state, self._etag = QueueState(), None
        else:
            assert isinstance(found, tuple)
            self._state, self._etag = decode_state(found[0]), found[1]
        return True

    async def _commit(self, batch: list[_Pending[Any]]) -> None:
        fresh = False
        if self._state is None:
            await self._reload()
            fresh = True
        conflicts = 0
        while True:
            state = self._state
            assert state is not None
            txn = Txn(utcnow())
            results: list[tuple[_Pending[Any], Any]] = []
            failed: _Pending[Any] | None = None
            for item in batch:
                try:
                    results.append((item, item.op(state, txn)))
                except Exception as exc:
                    # ops check before they change anything, but do not trust a half-applied
                    # state: drop the op, re-read, apply the others again
                    item.future.set_exception(exc)
                    failed = item
                    break
            if failed is not None:
                batch = [b for b in batch if b is not failed]
                await self._reload()
                fresh = True
                continue
            if txn.changed:
                data = _ENCODER.encode(state)
                try:
                    self._etag = await self.store.swap(self.key, data, self._etag)
                except Conflict:
                    conflicts += 1
                    self.conflicts += 1
                    if conflicts >= self.MAX_CONFLICTS:
                        raise
                    await self._reload()
                    fresh = True
                    continue
                except BaseException:
                    self._state = None  # mutated but not written: read it again next time
                    raise
                self.commits += 1
            elif not fresh and await self._refresh():
                fresh = True
                continue
            for item, value in results:
                if not item.future.done():
                    item.future.set_result(value)
            if self.on_commit is not None and (txn.woken or txn.freed):
                self.on_commit(txn)
            return

    async def read(self) -> QueueState:
        """The current state, for readers: one conditional read, nothing written."""
        return await self.run(lambda state, txn: state)


__all__ = ["Op", "QueueState", "Rec", "StateLog", "Txn", "decode_rec", "decode_state"]
