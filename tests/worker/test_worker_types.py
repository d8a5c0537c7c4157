"""Every worker type runs sync and async functions, honours timeouts, and works from sync code as
the seeds use it."""

from __future__ import annotations

import asyncio
import os

import pytest

from omniq import AsyncOmniQ, TaskStatus
from omniq.exceptions import ConfigError, TaskFailedError
from omniq.storage.memory import (
    AsyncMemoryQueue,
    AsyncMemoryResultStorage,
    MemoryQueue,
    MemoryResultStorage,
)
from omniq.workers import AsyncWorker, ThreadPoolWorker, ThreadWorker, worker_class
from tests import tasks_fixture as tf

WORKER_TYPES = ["async", "thread", "thread_pool", "process", "process_pool"]


@pytest.mark.parametrize("worker_type", WORKER_TYPES)
async def test_every_worker_type_runs_sync_and_async_functions(worker_type: str) -> None:
    async with AsyncOmniQ(worker_type=worker_type) as oq:
        await oq.start_worker()
        assert oq.worker is not None
        assert type(oq.worker) is worker_class(worker_type)
        sync_id = await oq.enqueue(tf.multiply, func_args=dict(x=5, y=10))
        async_id = await oq.enqueue(tf.async_add, func_args=dict(x=5, y=10))
        assert await oq.get_result(sync_id, timeout=5) == 50
        assert await oq.get_result(async_id, timeout=5) == 15


@pytest.mark.parametrize("worker_type", WORKER_TYPES)
async def test_every_worker_type_times_out_async_tasks(worker_type: str) -> None:
    async with AsyncOmniQ(worker_type=worker_type) as oq:
        await oq.start_worker()
        tid = await oq.enqueue(tf.async_sleep, args=(10,), timeout=0.05, max_retries=0)
        with pytest.raises(TaskFailedError) as info:
            await oq.get_result(tid, timeout=5)
        assert info.value.error_type == "TaskTimeout"


async def test_thread_pool_bounds_concurrency_with_its_threads() -> None:
    tf.reset()
    queue, results = AsyncMemoryQueue(), AsyncMemoryResultStorage()
    ids = [await queue.enqueue(tf.track_concurrency, args=(0.02,)) for _ in range(9)]
    async with ThreadPoolWorker(queue, results, max_workers=3):
        for tid in ids:
            assert await results.wait(tid, timeout=5) is not None
    assert tf.peak_running <= 3


def test_unknown_worker_type_is_refused_listing_the_available_ones() -> None:
    with pytest.raises(ConfigError, match=r"'fork'.*async"):
        worker_class("fork")


def test_thread_worker_is_the_thread_pool_worker() -> None:
    assert ThreadWorker is ThreadPoolWorker


def test_seed_003_component_usage_with_start_and_stop_from_sync_code() -> None:
    queue = MemoryQueue(project_name="my_project", queues=["low", "medium", "high"])
    result_store = MemoryResultStorage(project_name="my_project")
    worker = ThreadPoolWorker(queue=queue, result_store=result_store, max_workers=20)
    worker.start()
    task_id = queue.enqueue(func=tf.add, func_args=dict(x=2, y=3), queue_name="low")
    result = worker.get_result(task_id, timeout=5)
    worker.stop()
    assert result == 5
    stored = result_store.get(task_id)
    assert stored is not None
    assert stored.result == 5


def test_seed_003_stacked_context_managers() -> None:
    with (
        MemoryQueue(project_name="p") as queue,
        MemoryResultStorage(project_name="p") as result_store,
        ThreadPoolWorker(queue=queue, result_store=result_store) as worker,
    ):
        task_id = queue.enqueue(tf.multiply, func_args=dict(x=6, y=7))
        assert worker.get_result(task_id, timeout=5) == 42


def test_seed_003_async_worker_driven_from_sync_code() -> None:
    queue = MemoryQueue(project_name="my_project")
    worker = AsyncWorker(queue=queue, max_workers=10)
    worker.start()
    sync_task_id = queue.enqueue(tf.multiply, func_args=dict(x=5, y=10))
    async_task_id = queue.enqueue(tf.async_add, func_args=dict(x=5, y=10))
    assert worker.get_result(sync_task_id, timeout=5) == 50
    assert worker.get_result(async_task_id, timeout=5) == 15
    worker.stop()


async def test_worker_pool_runs_workers_of_several_types_on_one_queue() -> None:
    from omniq.workers import AsyncWorkerPool, ProcessPoolWorker

    queue, results = AsyncMemoryQueue(queues=["io", "cpu"]), AsyncMemoryResultStorage()
    io_id = await queue.enqueue(tf.async_add, args=(1, 2), queue_name="io")
    cpu_id = await queue.enqueue(tf.whoami, queue_name="cpu")
    pool = AsyncWorkerPool(
        [
            AsyncWorker(queue, results, queues=["io"]),
            ProcessPoolWorker(queue, results, queues=["cpu"], max_workers=1),
        ]
    )
    async with pool:
        io = await results.wait(io_id, timeout=30)
        cpu = await results.wait(cpu_id, timeout=30)
    assert io is not None
    assert io.result == 3
    assert cpu is not None
    assert cpu.result != os.getpid()
    assert [s["type"] for s in pool.get_stats()] == ["async", "process"]


async def test_a_pool_whose_worker_cannot_start_stops_the_ones_it_started() -> None:
    from omniq.workers import AsyncWorkerPool, GeventPoolWorker

    queue, results = AsyncMemoryQueue(), AsyncMemoryResultStorage()
    first = AsyncWorker(queue, results)
    pool = AsyncWorkerPool([first, GeventPoolWorker(queue, results)])  # unpatched: refused

    with pytest.raises(ConfigError, match="monkey-patched"):
        await pool.start()

    assert not first.is_running
    tid = await queue.enqueue(tf.add, args=(1, 2))
    await asyncio.sleep(0.2)
    task = await queue.get_task(tid)
    assert task is not None
    assert task.status is TaskStatus.PENDING  # nobody serves the queue any more


def test_worker_pool_from_sync_code_runs_workers_of_several_types() -> None:
    from omniq.workers import ProcessPoolWorker, WorkerPool

    queue = MemoryQueue(queues=["io", "cpu"])
    results = MemoryResultStorage()
    pool = WorkerPool(
        [
            ThreadPoolWorker(queue=queue, result_store=results, queues=["io"], max_workers=2),
            ProcessPoolWorker(queue=queue, result_store=results, queues=["cpu"], max_workers=1),
        ]
    )
    pool.start()
    try:
        io_id = queue.enqueue(tf.multiply, args=(6, 7), queue_name="io")
        cpu_id = queue.enqueue(tf.whoami, queue_name="cpu")
        io = results.wait(io_id, timeout=30)
        cpu = results.wait(cpu_id, timeout=30)
    finally:
        pool.stop()
    assert io is not None
    assert io.result == 42
    assert cpu is not None
    assert cpu.result != os.getpid()
    assert [s["type"] for s in pool.get_stats()] == ["thread", "process"]
