"""OmniQ (sync): the same façade through the one sync-wrapper mechanism."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from omniq import OmniQ, TaskFailedError, TaskQueue
from omniq.backend.memory import MemoryBackend
from omniq.storage.memory import MemoryEventStorage, MemoryQueue, MemoryResultStorage
from omniq.workers import Worker
from tests import tasks_fixture as tf

# A sync façade shared by the task below: a sync task runs in a worker thread and enqueues through it.
app = OmniQ(project_name="sync-facade")


def enqueue_child(n: int) -> str:
    child_id: str = app.enqueue(tf.multiply, args=(n, 2))
    return child_id


async def calls_sync_api_from_the_loop() -> None:
    app.get_queue_size()  # must refuse instead of deadlocking


@pytest.fixture
def oq() -> Iterator[OmniQ]:
    tf.reset()
    with OmniQ(project_name="sync", event_store=MemoryEventStorage()) as instance:
        yield instance


def test_start_enqueue_get_result_stop(oq: OmniQ) -> None:
    oq.start_worker()
    tid = oq.enqueue(tf.add, func_args=dict(x=2, y=3))
    assert oq.get_result(tid, timeout=5) == 5
    oq.stop_worker()


def test_sync_suffix_aliases_exist_for_every_coroutine_method(oq: OmniQ) -> None:
    tid = oq.enqueue_sync(tf.add, args=(1, 1))
    assert oq.get_queue_size_sync() == 1
    oq.start_worker_sync()
    assert oq.get_result_sync(tid, timeout=5) == 2
    oq.stop_worker_sync()


def test_remote_failure_keeps_its_exception_type(oq: OmniQ) -> None:
    oq.start_worker()
    tid = oq.enqueue(tf.boom, args=("sync kaput",), max_retries=0)
    with pytest.raises(TaskFailedError, match="sync kaput"):
        oq.get_result(tid, timeout=5)


def test_sync_task_enqueues_another_task_from_its_worker_thread() -> None:
    app.start_worker()
    try:
        child_id = app.get_result(app.enqueue(enqueue_child, args=(21,)), timeout=5)
        assert app.get_result(child_id, timeout=5) == 42
    finally:
        app.stop_worker()


def test_sync_api_called_from_the_loop_thread_raises_instead_of_deadlocking() -> None:
    app.start_worker()
    try:
        tid = app.enqueue(calls_sync_api_from_the_loop, max_retries=0)
        with pytest.raises(TaskFailedError) as info:
            app.get_result(tid, timeout=5)
        assert info.value.error_type == "RuntimeError"
        assert "Async" in (info.value.error_message or "")
    finally:
        app.stop_worker()


def test_task_decorator_on_sync_app_enqueues_synchronously(oq: OmniQ) -> None:
    @oq.task(name="sync.triple", max_retries=1)
    def triple(x: int) -> int:
        return 3 * x

    oq.start_worker()
    tid = triple.enqueue(5)
    assert isinstance(tid, str)
    assert oq.get_result(tid, timeout=5) == 15
    assert triple(2) == 6


def test_components_have_sync_twins() -> None:
    queue, results = MemoryQueue(queues=["low"]), MemoryResultStorage()
    with OmniQ(task_queue=queue, result_store=results) as oq:
        oq.start_worker()
        tid = queue.enqueue(tf.add, func_args=dict(x=4, y=4), queue_name="low")
        assert oq.get_result(tid, timeout=5) == 8
        stored = results.get(tid)
        assert stored is not None
        assert stored.result == 8


def test_sync_worker_with_stacked_context_managers() -> None:
    with (
        MemoryQueue() as queue,
        MemoryResultStorage() as results,
        Worker(queue=queue, result_store=results) as worker,
    ):
        tid = queue.enqueue(tf.multiply, func_args=dict(x=5, y=10))
        assert worker.get_result(tid, timeout=5) == 50


def test_sync_backend_exposes_sync_components() -> None:
    with MemoryBackend(project_name="sb") as backend:
        tid = backend.queue.enqueue_sync(tf.add, args=(1, 2))
        assert backend.queue.get_queue_size_sync("default") == 1
        task = backend.queue.dequeue(["default"])
        assert task is not None
        assert task.id == tid
        assert backend.queue is backend.queue  # the same sync twin each time


def test_sync_task_queue_of_seed_004_form() -> None:
    queue = TaskQueue(storage_type="memory", worker_type="async", max_workers=5)
    try:
        task_id = queue.enqueue(tf.add, args=(5, 10))
        assert queue.get_result(task_id, timeout=5) == 15
    finally:
        queue.close()
