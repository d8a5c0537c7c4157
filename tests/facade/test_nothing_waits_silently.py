"""Nothing waits silently (issue: the first hour, item 3): an unknown id is an error rather than a
wait that never ends, a requeued task's old outcome does not answer for its new run, and a task
sent to a queue nobody serves is pointed out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from omniq import AsyncOmniQ
from omniq.exceptions import QueueNameError, TaskFailedError, TaskNotFound
from omniq.models import TaskStatus
from omniq.storage.memory import AsyncMemoryQueue
from tests import tasks_fixture as tf

#: A guard so that a regression fails the test instead of hanging the suite.
GUARD = 20


@pytest.fixture
async def oq() -> AsyncIterator[AsyncOmniQ]:
    tf.reset()
    async with AsyncOmniQ(project_name="first-hour") as app:
        yield app


@pytest.mark.parametrize("timeout", [None, 5.0])
async def test_get_result_of_an_unknown_id_raises_task_not_found(
    oq: AsyncOmniQ, timeout: float | None
) -> None:
    with pytest.raises(TaskNotFound, match="no-such-task"):
        await asyncio.wait_for(oq.get_result("no-such-task", timeout=timeout), GUARD)
    assert await oq.get_task("no-such-task") is None  # the two agree


async def test_get_results_and_get_task_result_of_an_unknown_id_raise_too(oq: AsyncOmniQ) -> None:
    known = await oq.enqueue(tf.add, args=(1, 2))
    await oq.start_worker()

    with pytest.raises(TaskNotFound, match="missing"):
        await asyncio.wait_for(oq.get_results([known, "missing"]), GUARD)
    with pytest.raises(TaskNotFound, match="missing"):
        await asyncio.wait_for(oq.get_task_result("missing", timeout=None), GUARD)


async def test_get_result_of_a_known_unfinished_task_still_waits(oq: AsyncOmniQ) -> None:
    task_id = await oq.enqueue(tf.add, args=(1, 2))

    assert await oq.get_result(task_id, timeout=0) is None
    assert await oq.get_result(task_id, timeout=0.2) is None  # waited, nothing ran it yet
    await oq.start_worker()
    assert await oq.get_result(task_id, timeout=GUARD) == 3


async def test_a_result_stored_without_a_task_is_still_returned(oq: AsyncOmniQ) -> None:
    from omniq.models import ResultStatus, TaskResult

    await oq.result_store.set(TaskResult(task_id="imported", status=ResultStatus.SUCCESS, result=7))

    assert await oq.get_result("imported") == 7


async def test_get_result_right_after_requeue_waits_for_the_new_run(oq: AsyncOmniQ) -> None:
    await oq.start_worker()
    task_id = await oq.enqueue(tf.fail_times, args=("requeued", 1), max_retries=0)
    with pytest.raises(TaskFailedError):
        await oq.get_result(task_id, timeout=GUARD)
    task = await oq.get_task(task_id)
    assert task is not None
    assert task.status is TaskStatus.DEAD

    assert await oq.requeue(task_id)

    assert await oq.get_result(task_id, timeout=GUARD) == "requeued ok after 2"


async def test_requeue_of_a_task_that_cannot_be_requeued_keeps_its_result(oq: AsyncOmniQ) -> None:
    await oq.start_worker()
    task_id = await oq.enqueue(tf.add, args=(2, 2))
    assert await oq.get_result(task_id, timeout=GUARD) == 4

    assert not await oq.requeue(task_id)  # a SUCCESS is not re-driven

    assert await oq.get_result(task_id, timeout=0) == 4


# -- a queue nobody serves --------------------------------------------------------------------


def unserved_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "no live worker" in r.getMessage()
    ]


async def test_enqueueing_to_a_queue_no_live_worker_serves_warns_once_per_queue(
    oq: AsyncOmniQ, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="omniq")

    await oq.enqueue(tf.add, args=(1, 1), queue_name="reports")
    await oq.enqueue(tf.add, args=(1, 2), queue_name="reports")
    await oq.enqueue_many([{"func": tf.add, "args": (1, 3), "queue_name": "emails"}])

    messages = unserved_warnings(caplog)
    assert len(messages) == 2, messages
    assert "'reports'" in messages[0]
    assert "--queues reports" in messages[0]
    assert "'emails'" in messages[1]


async def test_no_warning_when_a_live_worker_serves_the_queue(
    oq: AsyncOmniQ, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="omniq")
    async with AsyncOmniQ(project_name="first-hour") as other:
        # another app's worker (another process, as far as the registry tells) serves "reports"
        await other.start_worker(queues=["reports"])
        try:
            await _until_registered(oq, "reports")
            await oq.enqueue(tf.add, args=(1, 1), queue_name="reports")
        finally:
            await other.stop_worker()
    await oq.start_worker(queues=["default"])  # this app's own worker serves "default"
    await oq.enqueue(tf.add, args=(1, 1))

    assert unserved_warnings(caplog) == []


async def _until_registered(app: AsyncOmniQ, queue: str) -> None:
    for _ in range(GUARD * 20):
        if any(queue in w.queues for w in await app.list_workers()):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no worker serving {queue!r} registered")


# -- the default queue of a task queue built with queues=[...] -------------------------------


def test_seed_003_a_bare_enqueue_goes_to_the_first_named_queue(tmp_path: Path) -> None:
    from omniq import OmniQ, TaskQueue
    from omniq.backend import SQLiteBackend

    backend = SQLiteBackend(project_name="my_project", base_dir=str(tmp_path))
    task_queue = TaskQueue.from_backend(backend, queues=["high", "medium", "low"])
    with OmniQ.from_backend(backend) as oq:
        task_id = task_queue.enqueue(len, args=("four",))  # no queue_name, as seed 003 does

        task = oq.get_task(task_id)
        assert task is not None
        assert task.queue_name == "high"
        oq.start_worker(queues=["high", "medium", "low"])
        assert oq.get_result(task_id, timeout=GUARD) == 4


async def test_an_explicit_default_queue_wins() -> None:
    queue = AsyncMemoryQueue(queues=["high", "low"], default_queue="low")
    async with AsyncOmniQ(project_name="first-hour-default", task_queue=queue) as oq:
        task_id = await oq.enqueue(tf.add, args=(1, 2))
        schedule_id = await oq.schedule(tf.add, args=(1, 2), interval=60)

        task = await oq.get_task(task_id)
        schedule = await oq.get_schedule(schedule_id)
        assert task is not None
        assert schedule is not None
        assert (task.queue_name, schedule.queue_name) == ("low", "low")
        assert (await oq.enqueue(tf.add, args=(1, 2), queue_name="high")) is not None


@pytest.mark.parametrize(
    ("queues", "expected"),
    [(None, "default"), (["a", "default"], "default"), (["a", "b"], "a")],
)
def test_the_default_queue_without_default_queue(queues: list[str] | None, expected: str) -> None:
    assert AsyncMemoryQueue(queues=queues).default_queue == expected


def test_a_default_queue_outside_the_named_queues_is_refused_naming_it() -> None:
    with pytest.raises(QueueNameError, match="'urgent'"):
        AsyncMemoryQueue(queues=["high", "low"], default_queue="urgent")
