"""Small shared pieces of the conformance suite: a task name, argument types, assertions."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from omniq._time import utcnow
from omniq.models.event import EventType, TaskEvent
from omniq.models.task import Task
from omniq.storage.base import BaseTaskQueue

#: An importable function name: the suite stores tasks, it never runs them.
FUNC = "operator:add"

#: The queues of a worker that serves three tiers, most urgent first.
TIERS = ["high", "medium", "low"]

#: Room for backends that keep times at millisecond precision; never a speed requirement.
TIME_TOLERANCE = timedelta(milliseconds=5)

#: Bound on a wait that must end by a wake-up, far below the wait's own timeout (30 s) and far
#: above any honest wake-up; a backend that sleeps out the full timeout fails here.
WAKE_UP_BOUND = 10.0
LONG_TIMEOUT = 30.0


@dataclass(frozen=True)
class Point:
    x: int
    y: int


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Money:
    """A plain custom class (no dataclass, no msgspec) with value equality."""

    def __init__(self, amount: int, currency: str) -> None:
        self.amount = amount
        self.currency = currency

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Money) and (other.amount, other.currency) == (
            self.amount,
            self.currency,
        )

    def __hash__(self) -> int:
        return hash((self.amount, self.currency))


def _explode() -> None:
    raise RuntimeError("this argument cannot be rebuilt")


class Poison:
    """Serializes fine, but rebuilding it raises: the payload of a poison task."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_explode, ())


class RecordingEventLogger:
    """Stands in for ``omniq.events.EventLogger``, whose contract here is ``emit(TaskEvent)``."""

    def __init__(self) -> None:
        self.events: list[TaskEvent] = []

    def emit(self, event: TaskEvent) -> None:
        self.events.append(event)

    def types_for(self, task_id: str) -> list[EventType]:
        return [e.event_type for e in self.events if e.task_id == task_id]


def record_events(queue: BaseTaskQueue) -> RecordingEventLogger:
    recorder = RecordingEventLogger()
    queue.wire(event_logger=recorder)
    return recorder


async def claim(queue: BaseTaskQueue, *queues: str, **options: Any) -> Task:
    """Claims one task that must be there."""
    task = await queue.dequeue(list(queues) or None, **options)
    assert task is not None, "expected a task to claim, got None"
    assert task.claim is not None
    return task


def claim_token(task: Task) -> str:
    assert task.claim is not None
    return task.claim


def nonzero_stats(stats: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """``stats()`` without zero counts: a backend may or may not report them."""
    cleaned = {q: {s: n for s, n in counts.items() if n} for q, counts in stats.items()}
    return {q: counts for q, counts in cleaned.items() if counts}


def ms_now() -> datetime:
    """Now, at whole milliseconds, so stored times compare equal on every backend."""
    now = utcnow()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def assert_time_close(actual: datetime | None, expected: datetime) -> None:
    assert actual is not None, f"expected a time close to {expected.isoformat()}, got None"
    assert abs(actual - expected) <= TIME_TOLERANCE, (
        f"{actual.isoformat()} != {expected.isoformat()}"
    )


def _walk(expected: Any, actual: Any, path: str) -> Iterator[str]:
    if type(actual) is not type(expected):
        yield f"{path}: {type(actual).__qualname__} {actual!r}, expected {type(expected).__qualname__}"
    elif isinstance(expected, dict):
        if list(actual) != list(expected):
            yield f"{path}: keys {list(actual)!r}, expected {list(expected)!r}"
        else:
            for key, value in expected.items():
                yield from _walk(value, actual[key], f"{path}[{key!r}]")
    elif isinstance(expected, list | tuple):
        if len(actual) != len(expected):
            yield f"{path}: length {len(actual)}, expected {len(expected)}"
        else:
            for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
                yield from _walk(e, a, f"{path}[{i}]")
    elif isinstance(expected, datetime):
        # equal instants are not enough: the offset (or naivety) is part of the value
        if actual != expected or actual.tzinfo != expected.tzinfo:
            yield f"{path}: {actual!r}, expected {expected!r}"
    elif actual != expected:
        yield f"{path}: {actual!r}, expected {expected!r}"


def assert_identical(actual: Any, expected: Any, path: str = "value") -> None:
    """Equal values of the same types, all the way down (a tuple must not come back a list)."""
    problems = list(_walk(expected, actual, path))
    assert not problems, "; ".join(problems)
