"""OmniQ's exception hierarchy.

Every error a user can meet derives from :class:`OmniQError`, and every message names the value that
caused it, so that a log line alone is enough to find the culprit.
"""

from __future__ import annotations

from typing import Any


class OmniQError(Exception):
    """Base class of every error OmniQ raises on purpose."""


class ConfigError(OmniQError, ValueError):
    """A setting, environment variable, URL or config file holds a value OmniQ cannot use."""


class SerializationError(OmniQError, TypeError):
    """A function, argument or result cannot be encoded or decoded."""


class CorruptRecord(SerializationError):
    """A stored task record whose state cannot be read (a status that is no status, a count
    that is no number, a time that is no time): written by something other than OmniQ, or
    damaged. Readers show it (DEAD, with the reason); a worker that meets it makes it DEAD."""


class SignatureError(SerializationError):
    """A payload is unsigned or its HMAC does not match: it was tampered with or signed by another key."""


class QueueNameError(OmniQError, ValueError):
    """A queue name is malformed or not one of the queues a task queue was built with."""


class TaskNotFound(OmniQError, KeyError):
    """No task (or schedule) with the given id exists."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable.
        return str(self.args[0]) if self.args else "task not found"


class FunctionNotFound(OmniQError, LookupError):
    """A task's function reference names neither a registered task nor an importable callable."""


class FunctionNotAllowed(FunctionNotFound):
    """A worker was not told about a task's function (see ``omniq.registry``): refused before
    anything is imported. A FunctionNotFound, so such a task goes DEAD at once like an unknown
    one."""


class BackendUnavailable(OmniQError, ConnectionError):
    """A storage backend cannot be reached, or its optional dependency is not installed."""


class CircuitOpen(BackendUnavailable):
    """A storage call refused at once, without touching the network, because the component's
    circuit breaker is open: its server failed several times in a row and is probed again
    after a cool-down (``omniq.storage._breaker``)."""


class TaskTimeout(OmniQError, TimeoutError):
    """A task ran past its ``timeout``."""


class TaskCancelledError(OmniQError):
    """A task was cancelled before it produced a result."""


class TaskExpiredError(OmniQError):
    """A task's TTL ran out before any worker started it."""


class TaskFailedError(OmniQError):
    """A task ended in failure; carries the remote error's type, message and traceback."""

    def __init__(
        self,
        task_id: str,
        error_type: str | None,
        error_message: str | None,
        traceback: str | None = None,
    ) -> None:
        self.task_id = task_id
        self.error_type = error_type
        self.error_message = error_message
        self.traceback = traceback
        super().__init__(f"task {task_id!r} failed: {error_type}: {error_message}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.task_id, self.error_type, self.error_message, self.traceback))


class NoCurrentTask(OmniQError, RuntimeError):
    """``omniq.current_task()`` was called where no task is running (outside a worker's task)."""


class UnsupportedCapability(OmniQError, LookupError):
    """A backend does not offer an optional capability (schedules, dependencies, ...) that a
    caller asked for; the message names the backend and the capability."""


__all__ = [
    "BackendUnavailable",
    "CircuitOpen",
    "ConfigError",
    "CorruptRecord",
    "FunctionNotAllowed",
    "FunctionNotFound",
    "NoCurrentTask",
    "OmniQError",
    "QueueNameError",
    "SerializationError",
    "SignatureError",
    "TaskCancelledError",
    "TaskExpiredError",
    "TaskFailedError",
    "TaskNotFound",
    "TaskTimeout",
    "UnsupportedCapability",
]
