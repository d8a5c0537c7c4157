"""The task model: what is stored, claimed and executed.

A ``Task`` is a ``msgspec.Struct`` so that the worker's hot path encodes and decodes it without
touching ``json`` or ``pickle``. ``func`` is always a *name* (a registered task name or a
``module:qualname`` reference, ``__main__:qualname`` for a function of the script itself) so that
tasks are listable and readable everywhere; only a callable that has no name at all (a lambda, a
closure, a nested function) also travels in ``func_obj`` and forces the dill format for that task.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from omniq._ids import new_id
from omniq._time import as_utc, as_utc_opt, utcnow
from omniq.models.progress import TaskProgress
from omniq.models.retry import RetryPolicy

DEFAULT_QUEUE = "default"


class TaskStatus(enum.StrEnum):
    PENDING = "pending"  # ready, or delayed until ``eta``
    WAITING = "waiting"  # dependencies not done yet
    RUNNING = "running"  # claimed under a lease
    SUCCESS = "success"
    FAILED = "failed"  # transient: a failed attempt with retries left goes back to PENDING
    DEAD = "dead"  # dead-letter: out of attempts, or poison
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {TaskStatus.SUCCESS, TaskStatus.DEAD, TaskStatus.CANCELLED, TaskStatus.EXPIRED}
)


class PassResults(enum.StrEnum):
    """Whether a dependent task receives the results of its dependencies as its first argument."""

    NONE = "none"
    ONE = "one"  # the single dependency's result (a chain step)
    ALL = "all"  # the list of all dependencies' results, in depends_on order (a chord callback)


class DependencyPolicy(enum.StrEnum):
    CANCEL = "cancel"  # a dependency that ends DEAD/CANCELLED/EXPIRED cancels the dependent
    RUN_ANYWAY = "run_anyway"


# -- the limits of a task's values -----------------------------------------------------------------
# One set of ranges, checked at enqueue (omniq.queue.builder) before anything is stored, so that
# every backend stores and returns every accepted value unchanged (tests/conformance/test_limits):
#
# ================================ =========================================================
# ``priority``                     -2**31 .. 2**31-1 (a PostgreSQL ``integer``)
# ``max_retries``                  0 .. 1,000,000
# durations: ``run_in``, ``ttl``,  finite, 0 .. 50 years (seconds or a timedelta); ``ttl`` and
# ``timeout``, ``retry_delay``,    ``timeout`` must be above 0
# ``retry_max_delay``,
# ``result_ttl``
# ``retry_backoff``                finite, 0 .. 100
# times: ``run_at``/``eta``,       1900-01-01 .. 2100-01-01 UTC (Redis orders 1843..2128 exactly)
# ``expires_at`` (and ``run_in``
# and ``ttl`` counted from now)
# ``task_id``, ``depends_on`` ids  1 .. 200 characters, no control characters (NUL breaks
#                                  PostgreSQL text) and no lone surrogates (not UTF-8)
# ================================ =========================================================
PRIORITY_RANGE = (-(2**31), 2**31 - 1)
MAX_RETRIES_RANGE = (0, 1_000_000)
MAX_SECONDS = 50 * 365 * 86_400.0
MAX_BACKOFF = 100.0
TIME_RANGE = (datetime(1900, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
MAX_ID_LENGTH = 200


def check_int(value: Any, name: str, limits: tuple[int, int]) -> int:
    """``value`` if it is an int within ``limits``; TypeError / ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    low, high = limits
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value!r}")
    return value


def check_seconds(
    value: Any, name: str, *, allow_zero: bool = True, maximum: float = MAX_SECONDS
) -> float:
    """A duration in seconds (a number or a timedelta) within 0..``maximum``."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, int) and abs(value) > maximum:
            seconds = math.inf  # maybe beyond a float too: refuse before converting
        else:
            seconds = float(value) if math.isfinite(value) else math.nan
    else:
        raise TypeError(f"{name} must be a timedelta or a number of seconds, got {value!r}")
    low = "from 0" if allow_zero else "above 0"
    if not (math.isfinite(seconds) and 0 <= seconds <= maximum) or (
        seconds == 0 and not allow_zero
    ):
        raise ValueError(
            f"{name} must be a finite number of seconds {low} up to {maximum:,.0f} "
            f"({maximum / 86_400:,.0f} days), got {value!r}"
        )
    return seconds


def check_time(value: Any, name: str) -> datetime:
    """An aware UTC datetime within :data:`TIME_RANGE` (naive input is taken as UTC)."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {value!r}")
    low, high = TIME_RANGE
    try:
        when = as_utc(value)
    except OverflowError:
        when = high + timedelta(days=1)  # beyond the range whichever way it overflowed
    if not low <= when <= high:
        raise ValueError(
            f"{name} must be between {low.isoformat()} and {high.isoformat()}, got {value!r}"
        )
    return when


def check_id(value: Any, name: str) -> str:
    """A task id every backend stores as given: 1..200 printable characters."""
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise ValueError(
            f"{name} must be a non-empty string of at most {MAX_ID_LENGTH} characters, "
            f"got {value!r}"
        )
    if value.isascii() and value.isprintable():
        return value  # the usual id, checked in C: no control character, no surrogate
    for char in value:
        code = ord(char)
        if code < 0x20 or code == 0x7F or 0xD800 <= code <= 0xDFFF:
            raise ValueError(
                f"{name} must not contain control characters or lone surrogates, got {value!r} "
                f"(character {char!r})"
            )
    return value


def callable_name(func: Callable[..., Any]) -> str:
    """The ``module:qualname`` a callable is known by (whether or not it is importable)."""
    module = getattr(func, "__module__", None) or "__main__"
    qualname = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    if qualname is None:
        qualname = type(func).__qualname__
    return f"{module}:{qualname}"


def func_ref(func: Callable[..., Any]) -> tuple[str, Callable[..., Any] | None]:
    """``(name, None)`` for a callable that travels by reference, ``(its display name, func)``
    for one that has no reference and must travel by value (dill)."""
    from omniq.registry import registry  # the registry needs this module: import on use

    ref = registry.reference(func)
    return (ref, None) if ref is not None else (callable_name(func), func)


class Task(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One unit of work and its whole lifecycle state.

    Times are aware UTC datetimes (naive input is taken as UTC); durations are seconds.
    """

    func: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = msgspec.field(default_factory=dict)
    id: str = msgspec.field(default_factory=new_id)
    queue_name: str = DEFAULT_QUEUE
    priority: int = 0
    # scheduling and TTL
    eta: datetime | None = None
    expires_at: datetime | None = None
    result_ttl: float | None = None
    # retry policy
    max_retries: int = 0
    retry_delay: float = 1.0
    retry_backoff: float = 2.0
    retry_max_delay: float = 300.0
    retry_jitter: bool = True
    retry_on: tuple[str, ...] = ()
    timeout: float | None = None
    # limits shared by every worker (omniq.models.limits): tasks of this name at most
    # ``rate_limit`` ("100/m"); at most ``concurrency_limit`` running at once under
    # ``concurrency_key``
    rate_limit: str | None = None
    concurrency_key: str | None = None
    concurrency_limit: int | None = None
    # workflow
    depends_on: tuple[str, ...] = ()
    dependency_policy: DependencyPolicy = DependencyPolicy.CANCEL
    pass_results: PassResults = PassResults.NONE
    # event (on_success, on_failure, on_retry, on_complete) -> callbacks: import names, or the
    # callables themselves when they have none (which makes the task travel as dill)
    callbacks: dict[str, list[Any]] = msgspec.field(default_factory=dict)
    schedule_id: str | None = None
    # lifecycle state
    status: TaskStatus = TaskStatus.PENDING
    attempts: int = 0
    created_at: datetime = msgspec.field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    worker_id: str | None = None
    claim: str | None = None
    lease_expires_at: datetime | None = None
    cancel_requested: bool = False
    error_type: str | None = None
    error_message: str | None = None
    error_traceback: str | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    #: what the task last reported while running (``omniq.current_task().set_progress``); kept
    #: by the store beside the state, outside the payload, and laid over it by readers
    progress: TaskProgress | None = None
    # A callable without an importable name; only ever set together with the dill format.
    func_obj: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.func, str):
            if not callable(self.func):
                raise TypeError(f"Task func must be a callable or a name, got {self.func!r}")
            self.func, self.func_obj = func_ref(self.func)
        if not self.func:
            raise ValueError("Task func must not be empty")
        if not isinstance(self.args, tuple):
            self.args = tuple(self.args)
        self.created_at = as_utc(self.created_at)
        self.eta = as_utc_opt(self.eta)
        self.expires_at = as_utc_opt(self.expires_at)
        self.started_at = as_utc_opt(self.started_at)
        self.finished_at = as_utc_opt(self.finished_at)
        self.lease_expires_at = as_utc_opt(self.lease_expires_at)
        if isinstance(self.depends_on, list):
            self.depends_on = tuple(self.depends_on)
        if isinstance(self.retry_on, list):
            self.retry_on = tuple(self.retry_on)

    def __hash__(self) -> int:
        return hash(self.id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Task) and other.id == self.id

    @property
    def ready_at(self) -> datetime:
        """When the task may first run: its ``eta``, or its creation."""
        return self.eta or self.created_at

    @property
    def max_attempts(self) -> int:
        return self.max_retries + 1

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or utcnow())

    @property
    def retry_policy(self) -> RetryPolicy:
        """This task's retry fields as one value (what ``omniq.queue.retry.decide`` reads)."""
        return RetryPolicy(
            max_retries=self.max_retries,
            delay=self.retry_delay,
            backoff=self.retry_backoff,
            max_delay=self.retry_max_delay,
            jitter=self.retry_jitter,
            retry_on=self.retry_on,
        )

    def retry_delay_for(self, attempt: int) -> float:
        """Exponential backoff with optional full jitter: attempt 1 waits about ``retry_delay``."""
        return self.retry_policy.delay_for(attempt)

    @property
    def lease_remaining(self) -> timedelta | None:
        if self.lease_expires_at is None:
            return None
        return self.lease_expires_at - utcnow()


def check_task(task: Task) -> Task:
    """A ready-made ``Task`` (given to ``enqueue_many`` as an object, not built from ``enqueue``
    arguments) held to the same limits, so that no backend is handed a value it cannot store."""
    check_id(task.id, f"task id of {task.func!r}")
    for dep in task.depends_on:
        check_id(dep, f"a depends_on id of task {task.id!r}")
    check_int(task.priority, f"priority of task {task.id!r}", PRIORITY_RANGE)
    check_int(task.max_retries, f"max_retries of task {task.id!r}", MAX_RETRIES_RANGE)
    for name in ("result_ttl", "timeout", "retry_delay", "retry_max_delay"):
        value = getattr(task, name)
        if value is not None:
            check_seconds(value, f"{name} of task {task.id!r}")
    if not (math.isfinite(task.retry_backoff) and 0 <= task.retry_backoff <= MAX_BACKOFF):
        raise ValueError(
            f"retry_backoff of task {task.id!r} must be a finite number 0 .. {MAX_BACKOFF:g}, "
            f"got {task.retry_backoff!r}"
        )
    for name in ("eta", "expires_at", "created_at"):
        value = getattr(task, name)
        if value is not None:
            check_time(value, f"{name} of task {task.id!r}")
    if task.rate_limit is not None or task.concurrency_key is not None:
        check_task_limits(task)
    return task


def check_task_limits(task: Task) -> None:
    from omniq.models.limits import (
        check_concurrency_key,
        check_concurrency_limit,
        rate_limit_text,
    )

    task.rate_limit = rate_limit_text(task.rate_limit, f"rate_limit of task {task.id!r}")
    if task.concurrency_key is not None:
        check_concurrency_key(task.concurrency_key, f"concurrency_key of task {task.id!r}")
        task.concurrency_limit = check_concurrency_limit(
            1 if task.concurrency_limit is None else task.concurrency_limit,
            f"concurrency_limit of task {task.id!r}",
        )


# State fields a backend tracks outside the encoded payload and lays back over a decoded task.
STATE_FIELDS = (
    "status",
    "expires_at",
    "attempts",
    "eta",
    "started_at",
    "finished_at",
    "worker_id",
    "claim",
    "lease_expires_at",
    "cancel_requested",
    "error_type",
    "error_message",
    "error_traceback",
)


def copy_state(source: Task, target: Task) -> Task:
    for name in STATE_FIELDS:
        setattr(target, name, getattr(source, name))
    return target


__all__ = [
    "DEFAULT_QUEUE",
    "FINAL_STATUSES",
    "MAX_BACKOFF",
    "MAX_ID_LENGTH",
    "MAX_RETRIES_RANGE",
    "MAX_SECONDS",
    "PRIORITY_RANGE",
    "STATE_FIELDS",
    "TIME_RANGE",
    "DependencyPolicy",
    "PassResults",
    "Task",
    "TaskStatus",
    "callable_name",
    "check_id",
    "check_int",
    "check_seconds",
    "check_task",
    "check_time",
    "copy_state",
    "func_ref",
]
