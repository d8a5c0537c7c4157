"""The worker behaviours every worker type keeps, on the memory and SQLite backends (gevent runs in
its own monkey-patched process: see test_gevent_worker.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from omniq import AsyncOmniQ, TaskStatus
from omniq.backend import create_backend
from omniq.exceptions import TaskFailedError
from tests import tasks_fixture as tf

WORKER_TYPES = ["async", "thread", "process"]
BACKENDS = ["memory", "sqlite"]


@pytest.fixture(
    params=[(b, w) for b in BACKENDS for w in WORKER_TYPES], ids=lambda p: f"{p[0]}-{p[1]}"
)
async def oq(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncOmniQ]:
    backend_name, worker_type = request.param
    url = "memory://" if backend_name == "memory" else f"sqlite:///{tmp_path / 'matrix.db'}"
    app = AsyncOmniQ.from_backend(
        create_backend(url=url), worker_type=worker_type, worker_config={"max_workers": 2}
    )
    async with app:
        yield app


async def test_runs_sync_and_async_functions(oq: AsyncOmniQ) -> None:
    await oq.start_worker()
    sync_id = await oq.enqueue(tf.multiply, args=(6, 7))
    async_id = await oq.enqueue(tf.async_add, args=(40, 2))
    assert await oq.get_result(sync_id, timeout=30) == 42
    assert await oq.get_result(async_id, timeout=30) == 42


async def test_retries_then_ends_dead_with_the_error(oq: AsyncOmniQ) -> None:
    await oq.start_worker()
    tid = await oq.enqueue(tf.boom, args=("matrix",), max_retries=1, retry_delay=0.01)
    with pytest.raises(TaskFailedError) as info:
        await oq.get_result(tid, timeout=30)
    assert info.value.error_type == "ValueError"
    task = await oq.get_task(tid)
    assert task is not None
    assert task.status is TaskStatus.DEAD
    assert task.attempts == 2


async def test_async_task_past_its_timeout_fails_with_task_timeout(oq: AsyncOmniQ) -> None:
    await oq.start_worker()
    tid = await oq.enqueue(tf.async_sleep, args=(30,), timeout=0.2, max_retries=0)
    with pytest.raises(TaskFailedError) as info:
        await oq.get_result(tid, timeout=30)
    assert info.value.error_type == "TaskTimeout"


async def test_stop_hands_running_tasks_back_without_counting_the_attempt(oq: AsyncOmniQ) -> None:
    await oq.start_worker()
    tid = await oq.enqueue(tf.async_sleep, args=(30,))
    for _ in range(300):
        task = await oq.get_task(tid)
        if task is not None and task.status is TaskStatus.RUNNING:
            break
        await asyncio.sleep(0.02)
    await oq.stop_worker(timeout=0.1)
    task = await oq.get_task(tid)
    assert task is not None
    assert task.status is TaskStatus.PENDING
    assert task.attempts == 0


async def test_a_batch_of_tasks_completes_exactly_once(oq: AsyncOmniQ) -> None:
    await oq.start_worker()
    ids = await oq.enqueue_many([{"func": tf.add, "args": (i, i)} for i in range(100)])
    values = await asyncio.gather(*(oq.get_result(t, timeout=60) for t in ids))
    assert values == [2 * i for i in range(100)]
    stats = await oq.task_queue.stats()
    assert stats == {"default": {"success": 100}}
