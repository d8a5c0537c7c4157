"""Enqueue: what is stored, what is refused, and that arguments come back exactly as given."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from omniq.exceptions import QueueNameError, SerializationError
from omniq.models.task import Task, TaskStatus
from omniq.storage.base import BaseTaskQueue

from .helpers import (
    FUNC,
    TIERS,
    Color,
    Money,
    Point,
    assert_identical,
    claim,
    nonzero_stats,
)


async def test_enqueue_returns_the_task_id(queue: BaseTaskQueue) -> None:
    task_id = await queue.enqueue(FUNC, args=(1, 2))

    stored = await queue.get_task(task_id)
    assert stored is not None
    assert stored.id == task_id


async def test_enqueue_of_a_task_object_returns_its_id(queue: BaseTaskQueue) -> None:
    task = Task(func=FUNC, args=(1, 2))

    assert await queue.enqueue(task) == task.id
    assert await queue.get_task(task.id) is not None


async def test_get_task_returns_an_equal_pending_task(queue: BaseTaskQueue) -> None:
    task_id = await queue.enqueue(
        FUNC, args=(1, 2), kwargs={"scale": 3}, queue_name="reports", priority=7
    )

    stored = await queue.get_task(task_id)
    assert stored is not None
    assert stored.func == FUNC
    assert stored.args == (1, 2)
    assert stored.kwargs == {"scale": 3}
    assert stored.queue_name == "reports"
    assert stored.priority == 7
    assert stored.status is TaskStatus.PENDING
    assert stored.attempts == 0


async def test_get_task_of_unknown_id_returns_none(queue: BaseTaskQueue) -> None:
    assert await queue.get_task("no-such-task") is None


async def test_enqueue_with_existing_task_id_does_not_create_a_second_task(
    queue: BaseTaskQueue,
) -> None:
    first = await queue.enqueue(FUNC, args=(1, 2), task_id="report-2024-05")
    second = await queue.enqueue(FUNC, args=(3, 4), priority=9, task_id="report-2024-05")

    assert first == second == "report-2024-05"
    assert await queue.get_queue_size() == 1
    assert [t.id for t in await queue.list_tasks()] == ["report-2024-05"]


async def test_enqueue_with_existing_task_id_leaves_the_first_task_unchanged(
    queue: BaseTaskQueue,
) -> None:
    await queue.enqueue(FUNC, args=(1, 2), task_id="report-2024-05")
    await queue.enqueue(FUNC, args=(3, 4), priority=9, task_id="report-2024-05")

    stored = await queue.get_task("report-2024-05")
    assert stored is not None
    assert stored.args == (1, 2)
    assert stored.priority == 0


async def test_enqueue_of_a_task_object_with_existing_id_is_idempotent(
    queue: BaseTaskQueue,
) -> None:
    original = Task(func=FUNC, args=(1, 2))
    await queue.enqueue(original)
    await queue.enqueue(Task(func=FUNC, args=(5, 6), id=original.id))

    stored = await queue.get_task(original.id)
    assert stored is not None
    assert stored.args == (1, 2)
    assert await queue.get_queue_size() == 1


async def test_enqueue_with_id_of_a_running_task_leaves_it_running(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC, task_id="once")
    running = await claim(queue)

    await queue.enqueue(FUNC, task_id="once")

    stored = await queue.get_task("once")
    assert stored is not None
    assert stored.status is TaskStatus.RUNNING
    assert stored.claim == running.claim
    assert await queue.get_queue_size() == 0


async def test_enqueue_to_a_queue_not_in_queues_raises_listing_the_allowed_names(
    tiered_queue: BaseTaskQueue,
) -> None:
    with pytest.raises(QueueNameError) as raised:
        await tiered_queue.enqueue(FUNC, queue_name="urgent")

    message = str(raised.value)
    assert "urgent" in message
    for name in TIERS:
        assert name in message


async def test_enqueue_to_a_queue_not_in_queues_stores_nothing(
    tiered_queue: BaseTaskQueue,
) -> None:
    with pytest.raises(QueueNameError):
        await tiered_queue.enqueue(FUNC, queue_name="urgent")

    assert await tiered_queue.list_tasks() == []
    assert nonzero_stats(await tiered_queue.stats()) == {}


MALFORMED_QUEUE_NAMES = [
    pytest.param("a/../b", id="path-traversal"),
    pytest.param("x'; DROP TABLE t;--", id="sql-injection"),
    pytest.param("q:{x}", id="key-separator-and-hash-tag"),
    pytest.param("", id="empty"),
    pytest.param("a b", id="space"),
    pytest.param("orders.*", id="subject-wildcard"),
    pytest.param("-leading-dash", id="leading-dash"),
]


@pytest.mark.parametrize("name", MALFORMED_QUEUE_NAMES)
async def test_enqueue_with_malformed_queue_name_raises(queue: BaseTaskQueue, name: str) -> None:
    with pytest.raises(QueueNameError):
        await queue.enqueue(FUNC, queue_name=name)

    assert await queue.list_tasks() == []


@pytest.mark.parametrize("name", MALFORMED_QUEUE_NAMES)
async def test_enqueue_of_a_task_object_with_malformed_queue_name_raises(
    queue: BaseTaskQueue, name: str
) -> None:
    with pytest.raises(QueueNameError):
        await queue.enqueue(Task(func=FUNC, queue_name=name))

    assert await queue.list_tasks() == []


@pytest.mark.parametrize("name", MALFORMED_QUEUE_NAMES)
async def test_dequeue_from_malformed_queue_name_raises(queue: BaseTaskQueue, name: str) -> None:
    with pytest.raises(QueueNameError):
        await queue.dequeue([name])


def _generator() -> Any:
    return (i for i in range(3))


UNSERIALIZABLE: list[Any] = [
    pytest.param({"kwargs": {"lock": threading.Lock()}}, "kwargs['lock']", id="lock-in-kwargs"),
    pytest.param({"kwargs": {"rows": _generator()}}, "kwargs['rows']", id="generator-in-kwargs"),
    pytest.param({"args": (1, _generator())}, "args[1]", id="generator-in-args"),
]


@pytest.mark.parametrize(("call", "culprit"), UNSERIALIZABLE)
async def test_unserializable_argument_raises_serialization_error_naming_it(
    queue: BaseTaskQueue, call: dict[str, Any], culprit: str
) -> None:
    with pytest.raises(SerializationError) as raised:
        await queue.enqueue(FUNC, **call)

    assert culprit in str(raised.value)


@pytest.mark.parametrize(("call", "culprit"), UNSERIALIZABLE)
async def test_unserializable_argument_stores_nothing(
    queue: BaseTaskQueue, call: dict[str, Any], culprit: str
) -> None:
    await queue.enqueue(FUNC, args=(1, 2))

    with pytest.raises(SerializationError):
        await queue.enqueue(FUNC, **call)

    assert await queue.get_queue_size() == 1
    assert len(await queue.list_tasks()) == 1


ROUND_TRIP_VALUES: list[Any] = [
    pytest.param((1, "a", (2, (3,))), id="nested-tuple"),
    pytest.param([(1, 2), (3, 4)], id="list-of-tuples"),
    pytest.param({1, 2, 3}, id="set"),
    pytest.param(frozenset({"a", "b"}), id="frozenset"),
    pytest.param(Point(1, 2), id="dataclass"),
    pytest.param(Money(250, "EUR"), id="custom-class"),
    pytest.param(Color.BLUE, id="enum"),
    pytest.param(datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC), id="datetime-utc"),
    pytest.param(
        datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2))), id="datetime-offset"
    ),
    pytest.param(datetime(2024, 5, 6, 7, 8, 9), id="datetime-naive"),
    pytest.param(date(2024, 5, 6), id="date"),
    pytest.param(timedelta(minutes=90), id="timedelta"),
    pytest.param(b"\x00\xffraw", id="bytes"),
    pytest.param({"a": {"b": [1, {"c": None}]}, "n": 1.5, "ok": True}, id="nested-dict"),
    pytest.param({1: "one", 2: "two"}, id="int-keys"),
    pytest.param(2**100, id="big-int"),
    pytest.param(-(2**80), id="big-negative-int"),
    pytest.param(Decimal("1.10"), id="decimal"),
    pytest.param(uuid.UUID("12345678-1234-5678-1234-567812345678"), id="uuid"),
    pytest.param("héllo ✓", id="unicode"),
    pytest.param(((), [], {}), id="empty-containers"),
]


@pytest.mark.parametrize("value", ROUND_TRIP_VALUES)
async def test_positional_argument_round_trips_exactly(queue: BaseTaskQueue, value: Any) -> None:
    await queue.enqueue(FUNC, args=(value, "tail"))

    task = await claim(queue)
    assert_identical(task.args, (value, "tail"), path="args")


@pytest.mark.parametrize("value", ROUND_TRIP_VALUES)
async def test_keyword_argument_round_trips_exactly(queue: BaseTaskQueue, value: Any) -> None:
    await queue.enqueue(FUNC, kwargs={"value": value, "other": 1})

    task = await claim(queue)
    assert_identical(task.kwargs, {"value": value, "other": 1}, path="kwargs")


async def test_arguments_are_copied_at_enqueue_time(queue: BaseTaskQueue) -> None:
    payload = {"items": [1, 2]}
    await queue.enqueue(FUNC, kwargs={"payload": payload})
    payload["items"].append(3)

    task = await claim(queue)
    assert task.kwargs == {"payload": {"items": [1, 2]}}
