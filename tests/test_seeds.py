"""The seeds' usage examples that need only the memory backend, run as written.

Examples naming SQLite, PostgreSQL, Redis or the file backend join here when those backends land.
"""

from __future__ import annotations

from datetime import timedelta

from omniq.backend.memory import AsyncMemoryBackend, MemoryBackend


async def test_seed_004_async_example_as_written(capsys: object) -> None:
    from omniq import AsyncTaskQueue, Task  # noqa: F401 - imported as in the seed

    # Create a task queue with async interface
    queue = AsyncTaskQueue(
        storage_type="memory",
        worker_type="async",
        max_workers=10,
    )

    # Define an async task
    async def my_task(x, y):  # type: ignore[no-untyped-def]
        return x + y

    # Enqueue task
    task_id = await queue.enqueue(my_task, args=(5, 10))

    # Get result
    result = await queue.get_result(task_id)
    print(f"Result: {result}")  # Result: 15
    assert result == 15
    await queue.close()


async def test_seed_001_basic_usage_on_the_memory_backend() -> None:
    from omniq.models.task import Task

    async with AsyncMemoryBackend() as backend:
        task = Task(
            func="my_function", args=(1, 2, 3), kwargs={"key": "value"}, queue_name="default"
        )
        task_id = await backend.queue.enqueue(task)
        dequeued_task = await backend.queue.dequeue(["default"])
        assert dequeued_task is not None
        assert dequeued_task.id == task_id
        assert dequeued_task.args == (1, 2, 3)
        assert dequeued_task.kwargs == {"key": "value"}


def test_seed_001_synchronous_usage_on_the_memory_backend() -> None:
    from omniq.models.task import Task

    with MemoryBackend() as backend:
        task = Task(func="my_function", args=(1, 2, 3), queue_name="default")
        task_id = backend.queue.enqueue_sync(task)
        assert isinstance(task_id, str)
        size = backend.queue.get_queue_size_sync("default")
        assert size == 1


async def test_seed_001_result_and_event_storage_on_the_memory_backend() -> None:
    from datetime import datetime

    from omniq.models.event import EventType, TaskEvent
    from omniq.models.result import ResultStatus, TaskResult

    async with AsyncMemoryBackend() as backend:
        result = TaskResult(
            task_id="task-123",
            status=ResultStatus.SUCCESS,
            result={"output": "Hello, World!"},
            ttl=timedelta(hours=24),
        )
        await backend.result_storage.set(result)
        retrieved = await backend.result_storage.get("task-123")
        assert retrieved is not None
        assert retrieved.result == {"output": "Hello, World!"}

        event = TaskEvent(
            task_id="task-123",
            event_type=EventType.COMPLETED,
            details={"duration": 1.5, "worker": "worker-001"},
        )
        await backend.event_storage.log_event(event)
        events = await backend.event_storage.get_events(task_id="task-123", limit=10)
        assert [e.details for e in events] == [{"duration": 1.5, "worker": "worker-001"}]

        recent_events = await backend.event_storage.get_events(
            start_time=datetime.utcnow() - timedelta(hours=1), limit=100
        )
        assert len(recent_events) == 1
        cutoff_time = datetime.utcnow() - timedelta(days=7)
        assert await backend.event_storage.cleanup_old_events(cutoff_time) == 0

        health = await backend.health_check()
        assert health["status"] == "healthy"
        assert health["connected"] is True
        cleanup_stats = await backend.cleanup()
        assert {"expired_tasks", "expired_results"} <= set(cleanup_stats)


def test_seed_004_sync_example_as_written() -> None:
    from omniq import Task, TaskQueue  # noqa: F401 - imported as in the seed

    # Create a task queue with sync interface
    queue = TaskQueue(storage_type="sqlite", worker_type="thread", max_workers=5)

    # Define a sync task
    def my_task(x, y):  # type: ignore[no-untyped-def]
        return x + y

    # Enqueue task
    task_id = queue.enqueue(my_task, args=(5, 10))

    # Get result
    result = queue.get_result(task_id)
    print(f"Result: {result}")  # Result: 15
    assert result == 15
    queue.close()


def test_seed_003_sqlite_backend_based_usage(tmp_path: object) -> None:
    from omniq import OmniQ, ResultStore, TaskQueue
    from omniq.backend import SQLiteBackend

    sqlite_backend = SQLiteBackend(project_name="my_project", base_dir=str(tmp_path))
    oq = OmniQ.from_backend(
        sqlite_backend, worker_type="thread_pool", worker_config={"max_workers": 10}
    )
    task_queue = TaskQueue.from_backend(sqlite_backend, queues=["high", "medium", "low"])
    result_store = ResultStore.from_backend(sqlite_backend)
    with oq:
        oq.start_worker(queues=["high", "medium", "low"])  # a worker serves the queues it is given
        task_id = task_queue.enqueue(len, args=("four",), queue_name="high")
        assert oq.get_result(task_id, timeout=10) == 4
        stored = result_store.get(task_id)
        assert stored is not None
        assert stored.result == 4
