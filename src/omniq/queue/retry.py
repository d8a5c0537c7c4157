"""The retry decision, made once for every worker type and backend: a failed attempt either
runs again at a time (``retry_at``) or ends DEAD, from the task's :class:`RetryPolicy`, the
attempts it has had and the error. Backends only store the decided outcome (a lease that runs
out with no worker left to decide is the one rule a store applies itself, atomically, in bulk:
out of attempts means DEAD, see ``BaseTaskQueue.recover_expired``)."""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from omniq._time import utcnow
from omniq.exceptions import FunctionNotFound, SerializationError
from omniq.models.retry import RetryPolicy, backoff_delay

#: errors that no retry can fix: the task goes DEAD at once
POISON: tuple[type[BaseException], ...] = (FunctionNotFound, SerializationError)


class RetryDecision(msgspec.Struct, frozen=True):
    """``retry_at`` set: run again then (after ``delay`` seconds); None: the task ends DEAD,
    ``why`` says so in words for the worker's log line."""

    retry_at: datetime | None
    delay: float = 0.0
    why: str = ""

    @property
    def retries(self) -> bool:
        return self.retry_at is not None


def decide(
    policy: RetryPolicy,
    attempts: int,
    error: BaseException | None = None,
    *,
    now: datetime | None = None,
) -> RetryDecision:
    """What follows failed attempt number ``attempts`` (1-based). ``error`` None: a retry asked
    for without an error to judge (``queue.fail(retry_at=...)``): only the attempts count."""
    if error is not None and isinstance(error, POISON):
        return RetryDecision(None, why="no retry can fix this")
    if error is not None and not matches(policy.retry_on, error):
        return RetryDecision(None, why=f"{error_type_name(error)} is not in retry_on")
    if attempts >= policy.max_attempts:
        return RetryDecision(None, why="out of attempts")
    delay = policy.delay_for(attempts)
    return RetryDecision((now or utcnow()) + timedelta(seconds=delay), delay)


def error_type_name(error: BaseException) -> str:
    """The error's type name; one raised in another process carries the original's."""
    remote_type = getattr(error, "type_name", None)
    return remote_type if isinstance(remote_type, str) else type(error).__name__


def matches(retry_on: tuple[str, ...], exc: BaseException) -> bool:
    """An empty ``retry_on`` retries every exception; otherwise one of the exception's classes
    (by qualified or plain name) must be listed. A remote error matches by its plain type name."""
    if not retry_on:
        return True
    remote_type = getattr(exc, "type_name", None)
    if isinstance(remote_type, str) and any(r.rpartition(".")[2] == remote_type for r in retry_on):
        return True
    for klass in type(exc).__mro__:
        if f"{klass.__module__}.{klass.__qualname__}" in retry_on or klass.__name__ in retry_on:
            return True
    return False


__all__ = ["POISON", "RetryDecision", "RetryPolicy", "backoff_delay", "decide", "matches"]
