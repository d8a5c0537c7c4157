"""The tagged envelope every stored payload travels in: one header byte, an optional MAC, a body.

Header bits: the low nibble is the format (msgpack or dill), ``0x80`` says a 32-byte HMAC-SHA256 of
the body follows. Tasks, results and schedules all go through :class:`Serializer`, so one path decides
formats, signing and the dill policy for the whole library.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from omniq.exceptions import SerializationError, SignatureError
from omniq.models.progress import MAX_PROGRESS_BYTES, TaskProgress
from omniq.models.result import TaskResult
from omniq.models.schedule import Schedule
from omniq.models.task import Task
from omniq.serialization import dill as dill_format
from omniq.serialization.msgspec import MsgspecCodec, Untaggable, args_are_lossless, is_lossless
from omniq.serialization.signing import MAC_SIZE, as_key, local_key, sign, verify

FORMAT_MSGPACK = 0x01
FORMAT_DILL = 0x02
FLAG_SIGNED = 0x80
_FORMAT_NAMES = {FORMAT_MSGPACK: "msgpack", FORMAT_DILL: "dill"}

T = TypeVar("T")
S = TypeVar("S", Task, Schedule)


class Serializer:
    """Encodes and decodes envelopes.

    ``secret_key`` signs every envelope and refuses unsigned or tampered ones. Without a key, dill
    payloads are accepted only where ``allow_dill`` says so; its default (``None``) allows them on
    local backends (memory, file, SQLite) and refuses them on network backends.
    """

    def __init__(
        self,
        secret_key: str | bytes | None = None,
        *,
        allow_dill: bool | None = None,
        local: bool = True,
    ) -> None:
        self._key = as_key(secret_key)
        #: a local store's own key file, read (or made) on first use when no key is configured
        self._key_file: Path | None = None
        #: the key came from the store's key file, not from the configuration
        self._auto_key = False
        self.allow_dill = allow_dill
        self.local = local
        self._codec = MsgspecCodec()

    def use_local_key(self, key_file: str | os.PathLike[str]) -> None:
        """Signs with the key kept in ``key_file`` (made on first use, random, 0600) unless a key
        is configured: a local store's payloads are then signed without any setup, and every
        process that opens the store shares its key (ARCHITECTURE section 4)."""
        if self._key is None:
            self._key_file = Path(key_file)

    def check_local_key(self) -> None:
        """Reads the store's key file now if it exists, so that one which is damaged or open to
        other users fails the connect, naming it, instead of the first payload read or written
        (a new store makes its key on first use, as before: a read-only one never has to)."""
        if self._key_file is not None and self._key_file.exists():
            self._load_key()

    def _load_key(self) -> None:
        if self._key_file is not None:
            self._key, self._key_file, self._auto_key = local_key(self._key_file), None, True

    @property
    def signed(self) -> bool:
        self._load_key()
        return self._key is not None

    @property
    def dill_allowed(self) -> bool:
        self._load_key()
        if self._key is not None:
            return True
        if self.allow_dill is not None:
            return self.allow_dill
        return self.local

    # -- envelopes -------------------------------------------------------------------------
    def _wrap(self, fmt: int, body: bytes) -> bytes:
        if self._key_file is not None:
            self._load_key()
        if self._key is None:
            return bytes((fmt,)) + body
        header = bytes((fmt | FLAG_SIGNED,))
        # the MAC covers the header too: flipping msgpack to dill must not pass verification
        return header + sign(self._key, header + body) + body

    def _unwrap(self, data: bytes | bytearray | memoryview, what: str) -> tuple[int, memoryview]:
        if self._key_file is not None:
            self._load_key()
        view = memoryview(data)
        if len(view) == 0:
            raise SerializationError(f"{what}: empty payload")
        header = view[0]
        fmt = header & 0x7F
        if fmt not in _FORMAT_NAMES:
            raise SerializationError(f"{what}: unknown payload format byte {header:#04x}")
        if header & FLAG_SIGNED:
            mac, body = view[1 : 1 + MAC_SIZE], view[1 + MAC_SIZE :]
            if self._key is None:
                if fmt == FORMAT_DILL and not self.dill_allowed:
                    raise SignatureError(
                        f"{what}: signed dill payload but no SECRET_KEY is configured to verify it"
                    )
                return fmt, body
            if len(mac) != MAC_SIZE or not verify(
                self._key, bytes((header,)) + bytes(body), bytes(mac)
            ):
                raise SignatureError(
                    f"{what}: HMAC signature does not match (tampered, or signed with another key)"
                )
            return fmt, body
        if self._key is not None and not (self._auto_key and fmt == FORMAT_MSGPACK):
            # A store's own key (no SECRET_KEY) still reads unsigned msgpack, as stored before
            # it had one: msgpack runs no code, and names only functions a worker allows.
            raise SignatureError(
                f"{what}: unsigned {_FORMAT_NAMES[fmt]} payload refused because "
                + ("SECRET_KEY is set" if not self._auto_key else "this store signs its payloads")
            )
        if fmt == FORMAT_DILL and not self.dill_allowed:
            raise SerializationError(
                f"{what}: dill payload refused on a network backend without SECRET_KEY; "
                "set OMNIQ_SECRET_KEY (recommended) or pass allow_dill=True"
            )
        return fmt, view[1:]

    # -- generic values --------------------------------------------------------------------
    def _msgpack(self, obj: Any) -> bytes | None:
        """The msgpack envelope, or None when msgspec cannot carry ``obj`` after all (a value the
        lossless checks do not look into, such as task metadata nested beyond them)."""
        try:
            return self._wrap(FORMAT_MSGPACK, self._codec.encode(obj))
        except (TypeError, ValueError, OverflowError):
            return None

    def dumps(self, value: Any, *, what: str = "value") -> bytes:
        try:
            encoded = self._msgpack(self._codec.tag(value))
        except Untaggable:
            encoded = None
        return encoded or self._wrap(FORMAT_DILL, self._dill_dumps(value, what))

    def loads(self, data: bytes | bytearray | memoryview, *, what: str = "value") -> Any:
        fmt, body = self._unwrap(data, what)
        if fmt == FORMAT_MSGPACK:
            return self._msgpack_decode(body, Any, what)
        return self._dill_loads(body, what)

    # -- tasks, results, schedules ---------------------------------------------------------
    def encode_task(self, task: Task) -> bytes:
        if task.func_obj is None:
            tagged = self._tagged(task, ("metadata",))
            encoded = self._msgpack(tagged) if tagged is not None else None
            if encoded is not None:
                return encoded
        return self._wrap(FORMAT_DILL, self._dill_task(task, task.func_obj, task.args, task.kwargs))

    def decode_task(self, data: bytes | bytearray | memoryview, task_id: str | None = None) -> Task:
        """The task a payload holds; ``task_id``, the id of the record it was read from, must be
        the task's own: the signature covers the id inside the payload, so a signed payload
        copied into another task's record is refused like a tampered one."""
        task = self._decode_typed(data, Task, "task")
        if task_id is not None and task.id != task_id:
            raise SignatureError(
                f"task {task_id!r}: its payload belongs to task {task.id!r} (copied from another "
                "task's record); refused"
            )
        return task

    def encode_schedule(self, schedule: Schedule) -> bytes:
        if schedule.func_obj is None:
            tagged = self._tagged(schedule, ("metadata", "task_options"))
            encoded = self._msgpack(tagged) if tagged is not None else None
            if encoded is not None:
                return encoded
        body = self._dill_task(schedule, schedule.func_obj, schedule.args, schedule.kwargs)
        return self._wrap(FORMAT_DILL, body)

    def decode_schedule(self, data: bytes | bytearray | memoryview) -> Schedule:
        return self._decode_typed(data, Schedule, "schedule")

    def encode_result(self, result: TaskResult) -> bytes:
        if is_lossless(result.result) and _plain_field(result.metadata):
            encoded = self._msgpack(result)
            if encoded is not None:
                return encoded
        try:
            value = self._codec.tag(result.result)
            metadata = self._codec.tag_fields(result.metadata)
        except Untaggable:
            encoded = None
        else:
            if value is not result.result or metadata is not result.metadata:
                result = msgspec.structs.replace(result, result=value, metadata=metadata)
            encoded = self._msgpack(result)
        if encoded is not None:
            return encoded
        return self._wrap(
            FORMAT_DILL, self._dill_dumps(result, f"result of task {result.task_id!r}")
        )

    def decode_result(
        self, data: bytes | bytearray | memoryview, task_id: str | None = None
    ) -> TaskResult:
        """The result a payload holds; as for :meth:`decode_task`, ``task_id`` (the task whose
        result was read) must be the one the signed payload names."""
        result = self._decode_typed(data, TaskResult, "result")
        if task_id is not None and result.task_id != task_id:
            raise SignatureError(
                f"result of task {task_id!r}: its payload is the result of task "
                f"{result.task_id!r} (copied from another record); refused"
            )
        return result

    def encode_progress(self, progress: TaskProgress, task_id: str) -> bytes:
        """A task's progress for its record: msgpack only (its partial data is read by
        dashboards and CLIs, which must never unpickle anything), signed like every envelope,
        and at most ``MAX_PROGRESS_BYTES``. The task id goes into the signed body, so progress
        copied into another task's record is refused like a copied payload."""
        try:
            data = self._codec.tag(progress.data)
        except Untaggable as exc:
            raise SerializationError(
                f"the progress data of task {task_id!r} must be plain data (numbers, strings, "
                f"lists, dicts, datetimes...): {exc}; got {_short_repr(progress.data)}"
            ) from None
        try:
            body = self._codec.encode((task_id, msgspec.structs.replace(progress, data=data)))
        except (TypeError, ValueError, OverflowError) as exc:
            raise SerializationError(
                f"the progress data of task {task_id!r} cannot be encoded: {exc}"
            ) from None
        if len(body) > MAX_PROGRESS_BYTES:
            raise ValueError(
                f"the progress of task {task_id!r} is {len(body)} bytes encoded, over the limit "
                f"of {MAX_PROGRESS_BYTES}: keep its note and data small (a large partial result "
                "belongs in the task's result)"
            )
        return self._wrap(FORMAT_MSGPACK, body)

    def decode_progress(self, data: bytes | bytearray | memoryview, task_id: str) -> TaskProgress:
        fmt, body = self._unwrap(data, f"progress of task {task_id!r}")
        if fmt != FORMAT_MSGPACK:
            raise SerializationError(f"progress of task {task_id!r}: not a msgpack payload")
        owner, progress = self._msgpack_decode(
            body, tuple[str, TaskProgress], f"progress of task {task_id!r}"
        )
        if owner != task_id:
            raise SignatureError(
                f"progress of task {task_id!r}: it belongs to task {owner!r} (copied from "
                "another task's record); refused"
            )
        return progress  # type: ignore[no-any-return]

    def format_of(self, data: bytes | bytearray | memoryview) -> str:
        view = memoryview(data)
        return _FORMAT_NAMES.get(view[0] & 0x7F, "unknown") if len(view) else "unknown"

    # -- internals -------------------------------------------------------------------------
    def _tagged(self, obj: S, dict_fields: tuple[str, ...]) -> S | None:
        """A task or schedule whose free-form values carry msgpack tags (the same object when
        none needed one), or None when one of them can only travel as dill."""
        if args_are_lossless(obj.args, obj.kwargs) and _plain_fields(obj, dict_fields):
            return obj  # the hot path: plain values, nothing to copy
        codec = self._codec
        try:
            changes: dict[str, Any] = {}
            args = codec.tag_items(obj.args)
            if args is not obj.args:
                changes["args"] = args
            for name in ("kwargs", *dict_fields):
                value = getattr(obj, name)
                tagged = codec.tag_fields(value)
                if tagged is not value:
                    changes[name] = tagged
        except Untaggable:
            return None
        return msgspec.structs.replace(obj, **changes) if changes else obj

    def _decode_typed(self, data: bytes | bytearray | memoryview, type_: type[T], what: str) -> T:
        fmt, body = self._unwrap(data, what)
        if fmt == FORMAT_MSGPACK:
            value: T = self._msgpack_decode(body, type_, what)
            return value
        obj = self._dill_loads(body, what)
        if not isinstance(obj, type_):
            raise SerializationError(
                f"{what}: payload holds {type(obj).__name__}, not {type_.__name__}"
            )
        return obj

    def _msgpack_decode(self, body: memoryview, type_: Any, what: str) -> Any:
        try:
            return self._codec.decode(body, type_)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise SerializationError(f"{what}: corrupted msgpack payload: {exc}") from exc

    def _dill_loads(self, body: memoryview, what: str) -> Any:
        try:
            return dill_format.loads(body)
        except Exception as exc:
            raise SerializationError(
                f"{what}: cannot unpickle dill payload: {type(exc).__name__}: {exc}"
            ) from exc

    def _check_dill_allowed(self, what: str, reason: str) -> None:
        if not self.dill_allowed:
            raise SerializationError(
                f"{what} needs dill ({reason}), and dill payloads are refused on a network backend "
                "without SECRET_KEY: set OMNIQ_SECRET_KEY (recommended), pass allow_dill=True, or "
                "use an importable module-level function and plain arguments"
            )

    def _dill_dumps(self, value: Any, what: str) -> bytes:
        self._check_dill_allowed(what, f"a value of type {type(value).__qualname__}")
        try:
            return dill_format.dumps(value)
        except Exception as exc:
            raise SerializationError(
                f"{what} of type {type(value).__qualname__} cannot be serialized: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def _dill_task(
        self, obj: Task | Schedule, func_obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> bytes:
        kind = type(obj).__name__.lower()
        what = f"{kind} {obj.func!r}"
        if func_obj is not None:
            reason = "its function has no importable name (a lambda, closure or __main__ function)"
        else:
            culprit = next(
                ((label, v) for label, v in _labelled(args, kwargs) if not self._codec.carries(v)),
                None,
            )
            reason = (
                f"argument {culprit[0]} is a {type(culprit[1]).__qualname__}"
                if culprit
                else "metadata msgpack cannot carry"
            )
        self._check_dill_allowed(what, reason)
        for label, value in _labelled(args, kwargs):
            if isinstance(value, _PROCESS_LOCAL):
                raise SerializationError(
                    f"{what}: {label} is a {type(value).__qualname__}, which only means something "
                    "inside this process; share state through the task's arguments or a store"
                )
        try:
            return dill_format.dumps(obj)
        except Exception as exc:
            raise SerializationError(_name_unpicklable(what, func_obj, args, kwargs, exc)) from exc


# dill would pickle these as fresh, unrelated objects: refuse them instead of surprising the user
_PROCESS_LOCAL: tuple[type, ...] = (
    type(threading.Lock()),
    type(threading.RLock()),
    threading.Condition,
    threading.Semaphore,
    threading.Event,
)


def _plain_field(value: dict[str, Any]) -> bool:
    """A ``dict[str, Any]`` field plain msgpack carries: str keys (its typed decoder takes no
    other) and plain values. Empty, as it nearly always is, costs no look at all (this runs for
    every task and every result)."""
    if not value:
        return True
    return all(type(k) is str for k in value) and is_lossless(value)


def _plain_fields(obj: Any, names: tuple[str, ...]) -> bool:
    # a loop, not all(<generator>): no generator made per task
    for name in names:  # noqa: SIM110
        if not _plain_field(getattr(obj, name)):
            return False
    return True


def _labelled(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(f"args[{i}]", a) for i, a in enumerate(args)] + [
        (f"kwargs[{k!r}]", v) for k, v in kwargs.items()
    ]


def _name_unpicklable(
    what: str, func_obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any], exc: Exception
) -> str:
    """Finds which part of a task cannot be pickled, so the error names the argument."""
    candidates: list[tuple[str, Any]] = []
    if func_obj is not None:
        candidates.append(("its function", func_obj))
    candidates += _labelled(args, kwargs)
    for label, value in candidates:
        try:
            dill_format.dumps(value)
        except Exception as inner:
            return (
                f"{what}: {label} ({type(value).__qualname__}: {_short_repr(value)}) cannot be "
                f"serialized: {type(inner).__name__}: {inner}"
            )
    return f"{what} cannot be serialized: {type(exc).__name__}: {exc}"


def _short_repr(value: Any, limit: int = 80) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__qualname__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
