"""The task record kept in the project's KV bucket: the state of record of one task.

The stream carries only *hints* (a task id, its priority and when it is ready); whoever gets a
hint reads the record and moves it on with a compare-and-set on the record's revision, so a hint
delivered twice, or a stale one, can never run a task twice. The record holds the encoded task as
it was enqueued and its state beside it, the way the SQL backends keep state columns beside the
payload column.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TypeVar

import msgspec

from omniq.models.task import Task, TaskStatus
from omniq.storage.base import as_corrupt

T = TypeVar("T")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(value: datetime | None) -> int | None:
    if value is None:
        return None
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(value: int | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value // 1_000_000, UTC).replace(microsecond=value % 1_000_000)


class Record(msgspec.Struct, array_like=True, omit_defaults=False):
    queue: str
    func: str
    priority: int
    created_us: int
    max_attempts: int
    payload: bytes
    status: str
    attempts: int = 0
    eta_us: int | None = None
    expires_us: int | None = None
    started_us: int | None = None
    finished_us: int | None = None
    lease_us: int | None = None
    worker_id: str | None = None
    claim: str | None = None
    cancel_requested: bool = False
    error_type: str | None = None
    error_message: str | None = None
    error_traceback: str | None = None
    depends_on: list[str] = []
    schedule_id: str | None = None
    #: the stream message of the current claim: its sequence, delivery count and ack subject
    seq: int = 0
    delivered: int = 0
    reply: str | None = None
    #: the last progress the running task reported (an envelope; see SupportsProgress)
    progress: bytes | None = None

    @classmethod
    def of(cls, task: Task, payload: bytes) -> Record:
        return cls(
            queue=task.queue_name,
            func=task.func if isinstance(task.func, str) else str(task.func),
            priority=task.priority,
            created_us=to_us(task.created_at) or 0,
            max_attempts=task.max_attempts,
            payload=payload,
            status=task.status.value,
            attempts=task.attempts,
            eta_us=to_us(task.eta),
            expires_us=to_us(task.expires_at),
            depends_on=list(task.depends_on),
            schedule_id=task.schedule_id,
        )

    @property
    def state(self) -> TaskStatus:
        return TaskStatus(self.status)

    def lay_over(self, task: Task) -> Task:
        """The record's state laid over a decoded (or shell) task."""
        task.status = TaskStatus(self.status)
        task.attempts = self.attempts
        task.eta = from_us(self.eta_us)
        task.expires_at = from_us(self.expires_us)
        task.started_at = from_us(self.started_us)
        task.finished_at = from_us(self.finished_us)
        task.lease_expires_at = from_us(self.lease_us)
        task.worker_id = self.worker_id
        task.claim = self.claim
        task.cancel_requested = self.cancel_requested
        task.error_type = self.error_type
        task.error_message = self.error_message
        task.error_traceback = self.error_traceback
        return task

    def lose_lease(self, now_us: int) -> None:
        """RUNNING whose holder lost its lease: PENDING again, or DEAD with its last attempt
        spent."""
        if self.attempts >= self.max_attempts:
            self.status, self.finished_us = "dead", now_us
            self.error_type = "LeaseExpired"
            self.error_message = f"lease expired on attempt {self.attempts} of {self.max_attempts}"
        else:
            self.status, self.eta_us = "pending", None
        self.claim = self.lease_us = None

    def shell(self, task_id: str) -> Task:
        """The task as far as the record tells without its payload (a poison task)."""
        return Task(
            func=self.func or "unknown:unknown",
            id=task_id,
            queue_name=self.queue,
            priority=self.priority,
            created_at=from_us(self.created_us) or _EPOCH,
            depends_on=tuple(self.depends_on),
            schedule_id=self.schedule_id,
        )


class Hint(msgspec.Struct, array_like=True):
    """What a stream message says: which task, what orders it in its queue and, when it was
    published right after the record was written, that record and its revision, so that the
    first claim is one compare-and-set without a read (it falls back to reading when the record
    moved on since)."""

    task_id: str
    priority: int
    ready_us: int
    revision: int = 0
    record: bytes | None = None


RECORD_ENCODER = msgspec.msgpack.Encoder()
RECORD_DECODER = msgspec.msgpack.Decoder(Record)
HINT_DECODER = msgspec.msgpack.Decoder(Hint)
_INDEX = re.compile(r"at `\$\[(\d+)\]`")


def read_record(data: bytes) -> Record:
    """The task record ``data`` (see :func:`decode_record`)."""
    return decode_record(data)[0]


def decode_record(data: bytes) -> tuple[Record, bool]:
    """The task record ``data``, and whether it was read as corrupt. One that does not decode
    (attempts that are no number, bytes that are no msgpack: written by something other than
    OmniQ, or damaged) is read as a DEAD record with error_type "CorruptRecord" and the reason
    (``as_corrupt``, the rule of every backend), keeping its queue, function and payload where
    they read, so that it is listed for what it is, breaks no call that reads many records, and
    a claim that meets it writes it so. A status that is no status decodes, and is reported by
    ``record_view``."""
    try:
        return RECORD_DECODER.decode(data), False
    except msgspec.DecodeError as exc:
        reason: object = exc
    try:
        raw = msgspec.msgpack.decode(data)
    except msgspec.DecodeError:
        raw = None
    fields = raw if isinstance(raw, list) else []
    where = _INDEX.search(str(reason))
    if where is not None and int(where.group(1)) < len(fields):
        index = int(where.group(1))
        name = Record.__struct_fields__[index] if index < len(Record.__struct_fields__) else index
        reason = f"{name} {fields[index]!r} is not valid ({reason})"

    def at(index: int, kind: type[T], default: T) -> T:
        value = fields[index] if index < len(fields) else None
        return value if isinstance(value, kind) and not isinstance(value, bool) else default

    task = as_corrupt(Task(func=at(1, str, "") or "?", queue_name=at(0, str, "?")), reason)
    record = Record(
        queue=task.queue_name,
        func=task.func if isinstance(task.func, str) else "?",
        priority=0,
        created_us=at(3, int, 0),
        max_attempts=1,
        payload=at(5, bytes, b""),
        status=task.status.value,
        error_type=task.error_type,
        error_message=task.error_message,
    )
    return record, True


__all__ = [
    "HINT_DECODER",
    "RECORD_DECODER",
    "RECORD_ENCODER",
    "Hint",
    "Record",
    "decode_record",
    "from_us",
    "read_record",
    "to_us",
]
