"""Cancelling a running task (issue 14, item 4): ``cancel`` says truthfully whether the task was
stopped, and the request reaches the worker through the backend's own wake-up, not at the next
heartbeat."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from omniq import AsyncOmniQ, TaskStatus
from omniq.exceptions import TaskCancelledError, TaskNotFound
from omniq.storage.memory import AsyncMemoryQueue
from tests import tasks_fixture as tf


async def finishes_anyway() -> str:
    """A task that does not let itself be stopped: it catches the cancellation and returns."""
    try:
        await asyncio.sleep(0.3)
    except asyncio.CancelledError:
        return "finished anyway"
    return "done"


@pytest.fixture
async def oq() -> AsyncIterator[AsyncOmniQ]:
    tf.reset()
    async with AsyncOmniQ(task_queue=AsyncMemoryQueue(lease_timeout=5.0)) as app:
        yield app


async def wait_running(oq: AsyncOmniQ, task_id: str) -> None:
    for _ in range(500):
        task = await oq.get_task(task_id)
        if task is not None and task.status is TaskStatus.RUNNING:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"task {task_id} never ran")


async def test_cancel_of_a_running_task_is_true_once_its_worker_stopped_it(oq: AsyncOmniQ) -> None:
    await oq.start_worker(heartbeat_interval=0.02)
    tid = await oq.enqueue(tf.async_sleep, args=(30,))
    await wait_running(oq, tid)

    assert await oq.cancel(tid, wait=5) is True

    task = await oq.get_task(tid)
    assert task is not None
    assert task.status is TaskStatus.CANCELLED


async def test_cancel_of_a_task_that_finishes_before_it_stops_is_false(oq: AsyncOmniQ) -> None:
    await oq.start_worker(heartbeat_interval=0.02)
    tid = await oq.enqueue(finishes_anyway)
    await wait_running(oq, tid)

    assert await oq.cancel(tid, wait=5) is False

    assert await oq.get_result(tid, timeout=5) == "finished anyway"


async def test_cancel_of_a_running_task_nobody_stops_within_wait_is_false(oq: AsyncOmniQ) -> None:
    tid = await oq.enqueue(tf.async_sleep, args=(30,))
    claimed = await oq.task_queue.dequeue(worker_id="gone", lease=5)  # a worker that vanished
    assert claimed is not None
    assert claimed.id == tid

    assert await oq.cancel(tid, wait=0.2) is False


async def test_cancel_of_a_waiting_task_is_true_at_once(oq: AsyncOmniQ) -> None:
    tid = await oq.enqueue(tf.record, args=("never",), run_in=60)

    assert await oq.cancel(tid) is True

    with pytest.raises(TaskCancelledError):
        await oq.get_result(tid, timeout=1)


async def test_cancel_of_a_finished_task_is_false(oq: AsyncOmniQ) -> None:
    await oq.start_worker()
    tid = await oq.enqueue(tf.add, args=(1, 2))
    assert await oq.get_result(tid, timeout=5) == 3

    assert await oq.cancel(tid) is False


async def test_cancel_of_an_unknown_task_raises(oq: AsyncOmniQ) -> None:
    with pytest.raises(TaskNotFound):
        await oq.cancel("no-such-task")
