"""Result storage: set, get, wait for, expire and delete results."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from omniq.models.result import ResultStatus, TaskResult
from omniq.storage.base import BaseResultStorage

from .helpers import LONG_TIMEOUT, WAKE_UP_BOUND, Money, Point, assert_identical, ms_now

RESULT_VALUES: list[Any] = [
    pytest.param(42, id="int"),
    pytest.param("done", id="str"),
    pytest.param(None, id="none"),
    pytest.param([1, 2.5, "x"], id="list"),
    pytest.param({"rows": [{"id": 1}], "total": 1}, id="nested-dict"),
    pytest.param((1, 2), id="tuple"),
    pytest.param(b"\x00bytes", id="bytes"),
    pytest.param(Point(3, 4), id="dataclass"),
    pytest.param(Money(5, "USD"), id="custom-class"),
]


@pytest.mark.parametrize("value", RESULT_VALUES)
async def test_set_then_get_round_trips_the_value(results: BaseResultStorage, value: Any) -> None:
    await results.set(TaskResult(task_id="t1", result=value))

    stored = await results.get("t1")
    assert stored is not None
    assert_identical(stored.result, value, path="result")


async def test_set_then_get_keeps_the_result_fields(results: BaseResultStorage) -> None:
    finished = ms_now()
    original = TaskResult(
        task_id="t1",
        status=ResultStatus.ERROR,
        error="bad input",
        error_type="ValueError",
        traceback="Traceback ...",
        queue_name="reports",
        schedule_id="nightly",
        worker_id="worker-1",
        attempts=2,
        started_at=finished - timedelta(seconds=3),
        finished_at=finished,
        metadata={"tenant": "acme"},
    )
    await results.set(original)

    assert await results.get("t1") == original


async def test_set_again_replaces_the_result(results: BaseResultStorage) -> None:
    await results.set(TaskResult(task_id="t1", result=1))
    await results.set(TaskResult(task_id="t1", result=2))

    stored = await results.get("t1")
    assert stored is not None
    assert stored.result == 2


async def test_get_of_an_unknown_task_returns_none(results: BaseResultStorage) -> None:
    assert await results.get("no-such-task") is None


async def test_get_many_returns_the_results_found(results: BaseResultStorage) -> None:
    await results.set(TaskResult(task_id="a", result=1))
    await results.set(TaskResult(task_id="b", result=2))

    found = await results.get_many(["a", "b", "missing"])

    assert {task_id: r.result for task_id, r in found.items()} == {"a": 1, "b": 2}


async def test_wait_returns_at_once_when_the_result_exists(results: BaseResultStorage) -> None:
    await results.set(TaskResult(task_id="t1", result="ready"))

    stored = await asyncio.wait_for(results.wait("t1", timeout=LONG_TIMEOUT), WAKE_UP_BOUND)
    assert stored is not None
    assert stored.result == "ready"


async def test_wait_returns_a_result_set_later(results: BaseResultStorage) -> None:
    waiting = asyncio.create_task(results.wait("t1", timeout=LONG_TIMEOUT))
    await asyncio.sleep(0.05)
    await results.set(TaskResult(task_id="t1", result="late"))

    stored = await asyncio.wait_for(waiting, WAKE_UP_BOUND)
    assert stored is not None
    assert stored.result == "late"


async def test_wait_ignores_results_of_other_tasks(results: BaseResultStorage) -> None:
    waiting = asyncio.create_task(results.wait("t1", timeout=0.3))
    await asyncio.sleep(0.05)
    await results.set(TaskResult(task_id="t2", result="not mine"))

    assert await waiting is None


async def test_wait_returns_none_after_the_timeout_when_never_set(
    results: BaseResultStorage,
) -> None:
    assert await results.wait("t1", timeout=0.1) is None


async def test_wait_with_zero_timeout_returns_at_once(results: BaseResultStorage) -> None:
    assert await asyncio.wait_for(results.wait("t1", timeout=0), WAKE_UP_BOUND) is None


async def test_result_with_ttl_is_gone_after_it(results: BaseResultStorage) -> None:
    await results.set(TaskResult(task_id="t1", result=1, ttl=timedelta(seconds=0.1)))
    assert await results.get("t1") is not None

    await asyncio.sleep(0.2)

    assert await results.get("t1") is None
    assert await results.get_many(["t1"]) == {}


async def test_cleanup_removes_expired_results_and_returns_the_count(
    results: BaseResultStorage,
) -> None:
    await results.set(TaskResult(task_id="old-1", result=1, ttl=timedelta(seconds=0.1)))
    await results.set(TaskResult(task_id="old-2", result=2, ttl=timedelta(seconds=0.1)))
    await results.set(TaskResult(task_id="kept", result=3, ttl=timedelta(seconds=60)))
    await results.set(TaskResult(task_id="forever", result=4))
    await asyncio.sleep(0.2)

    assert await results.cleanup() == 2

    assert set(await results.get_many(["old-1", "old-2", "kept", "forever"])) == {
        "kept",
        "forever",
    }


async def test_get_latest_returns_the_most_recent_result_of_a_schedule(
    results: BaseResultStorage,
) -> None:
    start = ms_now()
    for i in range(3):
        await results.set(
            TaskResult(
                task_id=f"run-{i}",
                result=i,
                schedule_id="nightly",
                finished_at=start + timedelta(seconds=i),
            )
        )
    await results.set(
        TaskResult(task_id="other", schedule_id="hourly", finished_at=start + timedelta(seconds=9))
    )

    latest = await results.get_latest("nightly")
    assert latest is not None
    assert latest.task_id == "run-2"


async def test_get_latest_of_an_unknown_schedule_returns_none(results: BaseResultStorage) -> None:
    await results.set(TaskResult(task_id="t1", result=1))

    assert await results.get_latest("no-such-schedule") is None


async def test_delete_removes_the_result(results: BaseResultStorage) -> None:
    await results.set(TaskResult(task_id="t1", result=1))

    assert await results.delete("t1") is True
    assert await results.get("t1") is None


async def test_delete_of_an_unknown_result_returns_false(results: BaseResultStorage) -> None:
    assert await results.delete("no-such-task") is False
