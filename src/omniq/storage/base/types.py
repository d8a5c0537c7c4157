"""The small values that cross the seam between the public methods and a backend's primitives."""

from __future__ import annotations

import enum
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

import msgspec

from omniq.exceptions import CorruptRecord, SerializationError
from omniq.models.event import TaskEvent
from omniq.models.result import TaskResult
from omniq.models.task import Task, TaskStatus
from omniq.queue.builder import validate_queue_name
from omniq.serialization import Serializer


class HeartbeatStatus(enum.StrEnum):
    OK = "ok"  # lease renewed
    LOST = "lost"  # the claim is stale: stop, the task belongs to someone else now
    CANCEL = "cancel"  # lease renewed, but cancellation was requested: stop the task


class EventSink(Protocol):
    """Where a task queue sends the events it emits: ``omniq.events.EventLogger`` (buffered, in
    the background), or anything else with ``emit`` (the conformance suite records them). Never
    blocks and never raises."""

    def emit(self, event: TaskEvent) -> None: ...


class Completion(msgspec.Struct):
    """A finished task to acknowledge, with the result to store before the acknowledgement.
    ``payload`` is the result encoded by the result storage's serializer, once: by the worker
    when it had to check that the value encodes, else by :meth:`encoded_result` on the way to
    the store."""

    task_id: str
    claim: str
    result: TaskResult | None = None
    payload: bytes | None = None

    def encoded_result(self, serializer: Serializer) -> bytes:
        """The result's bytes (a completion has a result when this is asked), encoded at most
        once."""
        if self.payload is None:
            assert self.result is not None, "only a completion with a result has its bytes"
            self.payload = serializer.encode_result(self.result)
        return self.payload


class Failure(msgspec.Struct, frozen=True):
    """A failed attempt to record (see ``BaseTaskQueue._fail``): where the task goes
    (``status``: PENDING to retry at ``retry_at``, DEAD or CANCELLED) and the error."""

    task_id: str
    claim: str
    status: TaskStatus
    error_type: str | None = None
    error_message: str | None = None
    error_traceback: str | None = None
    retry_at: datetime | None = None


def new_claim(worker_id: str | None, attempt: int) -> str:
    """A claim token: who claimed, which attempt, and randomness so no two claims are equal."""
    return f"{worker_id or 'anonymous'}:{attempt}:{secrets.token_hex(4)}"


def decoded_or_shell(
    serializer: Serializer, payload: bytes, shell: Callable[[], Task], task_id: str | None = None
) -> Task:
    """The task a stored payload holds, for readers. A payload that cannot be decoded (a poison
    task, already DEAD), or that belongs to another task than ``task_id`` (the record's own id:
    a copied payload), gives ``shell()`` instead, a task built from the stored columns, so that
    it is still listed and inspectable, without its arguments. The caller lays the stored state
    over either."""
    try:
        return serializer.decode_task(payload, task_id)
    except SerializationError:
        return shell()


#: What reading a damaged state field raises (``TaskStatus('bogus')``, ``int('x')``, a time out
#: of range, a missing field): the record is corrupt, not the program.
_STATE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError)
_TIMES = ("eta", "expires_at", "started_at", "finished_at", "lease_expires_at")


def _checked(task: Task) -> Task:
    """``task`` if its laid state has the types a task's state has (a backend's ``lay`` may
    copy a stored value as it is: SQLite keeps any type in any column)."""
    if not isinstance(task.status, TaskStatus):
        raise ValueError(f"status {task.status!r} is not a task status")
    for name in ("attempts", "priority"):
        value = getattr(task, name)
        if type(value) is not int:
            raise ValueError(f"{name} {value!r} is not an integer")
    for name in _TIMES:
        value = getattr(task, name)
        if value is not None and not isinstance(value, datetime):
            raise ValueError(f"{name} {value!r} is not a time")
    validate_queue_name(task.queue_name)
    return task


def undecodable_kind(exc: SerializationError) -> str:
    """The error_type a claim gives a task it makes DEAD because it cannot be read:
    "CorruptRecord" for its state, "SerializationError" for its payload (whatever the
    subclass: a bad signature is a payload that cannot be trusted)."""
    return CorruptRecord.__name__ if isinstance(exc, CorruptRecord) else "SerializationError"


def decoded_state(
    serializer: Serializer, payload: bytes, task_id: str, lay: Callable[[Task], Task]
) -> Task:
    """The task a claim runs: its payload decoded and its stored state laid over it by ``lay``
    (a backend's own). Raises SerializationError for a payload that cannot be decoded and
    CorruptRecord, naming the field, for state that cannot be read: the claim makes either
    DEAD with that reason and carries on."""
    task = serializer.decode_task(payload, task_id)
    try:
        return _checked(lay(task))
    except _STATE_ERRORS as exc:
        raise CorruptRecord(f"task {task_id!r}: the stored record is corrupt: {exc}") from exc


def record_view(
    serializer: Serializer,
    payload: bytes,
    shell: Callable[[], Task],
    task_id: str,
    lay: Callable[[Task], Task],
) -> Task:
    """What readers see of a stored record, and it never raises: :func:`decoded_or_shell` with
    the state laid over it, or, when that state cannot be read (see :func:`decoded_state`), the
    record as DEAD with ``error_type`` "CorruptRecord" and the reason, so that one bad record
    is listed for what it is while every other one is read as usual."""
    laid = None
    try:
        laid = lay(decoded_or_shell(serializer, payload, shell, task_id))
        return _checked(laid)
    except _STATE_ERRORS as exc:
        reason = exc
    if (
        laid is not None
        and laid.error_type == CorruptRecord.__name__
        and laid.status is TaskStatus.DEAD
    ):
        return laid  # already read or stored as corrupt: its own reason says what is wrong
    try:
        task = decoded_or_shell(serializer, payload, shell, task_id)
    except _STATE_ERRORS:
        task = Task(func="?", id=task_id)
    return as_corrupt(task, reason)


def as_corrupt(task: Task, reason: object) -> Task:
    """``task`` marked as the corrupt record it was read from: DEAD, not leased, with
    ``error_type`` "CorruptRecord" and ``reason`` (what could not be read). One rule for every
    backend, whether it finds the damage per record (:func:`record_view`) or while decoding a
    state object that holds many records (the file backend)."""
    task.status = TaskStatus.DEAD
    task.attempts = task.attempts if isinstance(task.attempts, int) else 0
    task.lease_expires_at = None
    task.error_type = CorruptRecord.__name__
    task.error_message = f"the stored record is corrupt: {reason}"
    return task
