"""The seeds' usage examples, run as written.

Those that need only the memory backend run in this process. Every example of seeds 001, 003 and
004 that does not need the File or NATS backend also runs as a real script (``python script.py``,
a fresh interpreter, its task functions in its own ``__main__``) on SQLite, PostgreSQL and Redis,
with no ``OMNIQ_SECRET_KEY`` set: what a newcomer pastes must work. Where a script differs from the
seed, a ``# changed:`` comment on the line says how; README's "The seeds' examples" says why.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from omniq.backend.memory import AsyncMemoryBackend, MemoryBackend
from tests.conftest import service_address
from tests.script_runs import REDIS_TEST_DB, SCRIPT_BACKENDS, ScriptPlace, open_place


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


# --- the seeds' examples as scripts, on SQLite, PostgreSQL and Redis -----------------------------


@pytest.fixture(params=SCRIPT_BACKENDS)
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ScriptPlace]:
    yield from open_place(request.param, tmp_path)


def backend_lines(place: ScriptPlace) -> dict[str, str]:
    """How seed 001's Redis lines read on ``place``'s backend (on Redis: as written; the project
    name comes from OMNIQ_PROJECT_NAME, unique per run)."""
    if place.backend == "redis":
        _, port = service_address("redis")
        return {
            "config_class": "RedisConfig",
            "backend": "RedisBackend",
            "module": "omniq.backend.redis",
            "config": f'RedisConfig(host="localhost", port={port})',
        }
    if place.backend == "postgres":
        host, port = service_address("postgres")
        schema = place.url.rpartition("schema=")[2]
        return {
            "config_class": "PostgresConfig",
            "backend": "PostgresBackend",
            "module": "omniq.backend.postgres",
            "config": f'PostgresConfig(host="{host}", port={port}, username="postgres", '
            f'database="test", schema="{schema}")  # changed: PostgreSQL',
        }
    return {
        "config_class": "SQLiteConfig",
        "backend": "SQLiteBackend",
        "module": "omniq.backend.sqlite",
        "config": f'SQLiteConfig(base_dir="{place.folder}")  # changed: SQLite',
    }


SEED_001_BASIC = """
    import asyncio
    from omniq.models.config import {config_class}
    from {module} import Async{backend}
    from omniq.models.task import Task

    async def main():
        config = {config}

        async with Async{backend}(config) as backend:
            # Create and enqueue a task
            task = Task(
                func="my_function",
                args=(1, 2, 3),
                kwargs={{"key": "value"}},
                queue_name="default"
            )

            task_id = await backend.queue.enqueue(task)
            print(f"Enqueued task: {{task_id}}")

            # Dequeue and process
            dequeued_task = await backend.queue.dequeue(["default"])
            if dequeued_task:
                print(f"Processing task: {{dequeued_task.id}}")

    asyncio.run(main())
"""


def test_seed_001_basic_usage(place: ScriptPlace) -> None:
    out = place.run(SEED_001_BASIC.format(**backend_lines(place))).stdout.splitlines()

    assert out[0].startswith("Enqueued task: ")
    assert out[1] == "Processing task: " + out[0].removeprefix("Enqueued task: ")


SEED_001_SYNC = """
    from omniq.models.config import {config_class}
    from {module} import {backend}
    from omniq.models.task import Task

    config = {config}

    with {backend}(config) as backend:
        # Create and enqueue a task
        task = Task(
            func="my_function",
            args=(1, 2, 3),
            queue_name="default"
        )

        task_id = backend.queue.enqueue_sync(task)
        print(f"Enqueued task: {{task_id}}")

        # Get queue size
        size = backend.queue.get_queue_size_sync("default")
        print(f"Queue size: {{size}}")
"""


def test_seed_001_synchronous_usage(place: ScriptPlace) -> None:
    out = place.run(SEED_001_SYNC.format(**backend_lines(place))).stdout.splitlines()

    assert out[0].startswith("Enqueued task: ")
    assert out[1] == "Queue size: 1"


# Seed 001's result, event, health, cleanup and monitoring fragments use ``await`` and a
# ``backend`` from the examples above: they run inside the same ``async with`` here.
SEED_001_STORAGE = """
    import asyncio
    from omniq.models.config import {config_class}
    from {module} import Async{backend}

    config = {config}

    async def main():  # changed: the fragments need a loop and a backend
        async with Async{backend}(config) as backend:
            from omniq.models.result import TaskResult, ResultStatus
            from datetime import timedelta

            # Store a result
            result = TaskResult(
                task_id="task-123",
                status=ResultStatus.SUCCESS,
                result={{"output": "Hello, World!"}},
                ttl=timedelta(hours=24)
            )

            await backend.result_storage.set(result)

            # Retrieve a result
            retrieved = await backend.result_storage.get("task-123")
            if retrieved:
                print(f"Result: {{retrieved.result}}")

            from omniq.models.event import TaskEvent, EventType

            # Log an event
            event = TaskEvent(
                task_id="task-123",
                event_type=EventType.COMPLETED,
                details={{"duration": 1.5, "worker": "worker-001"}}
            )

            await backend.event_storage.log_event(event)

            # Query events
            events = await backend.event_storage.get_events(
                task_id="task-123",
                limit=10
            )
            print(f"Events: {{[e.details for e in events] == [event.details]}}")  # key order: JSONB's

            health = await backend.health_check()
            print(f"Status: {{health['status']}}")
            print(f"Connected: {{health['connected']}}")

            # Clean up expired tasks and results
            cleanup_stats = await backend.cleanup()
            print(f"Cleaned up {{cleanup_stats['expired_tasks']}} tasks")
            print(f"Cleaned up {{cleanup_stats['expired_results']}} results")

            from datetime import datetime, timedelta

            # Get recent events
            recent_events = await backend.event_storage.get_events(
                start_time=datetime.utcnow() - timedelta(hours=1),
                limit=100
            )
            print(f"Recent: {{len(recent_events)}}")

            # Clean up old events
            cutoff_time = datetime.utcnow() - timedelta(days=7)
            cleaned = await backend.event_storage.cleanup_old_events(cutoff_time)
            print(f"Cleaned: {{cleaned}}")

    asyncio.run(main())
"""


def test_seed_001_results_events_health_cleanup_and_monitoring(place: ScriptPlace) -> None:
    out = place.run(SEED_001_STORAGE.format(**backend_lines(place))).stdout.splitlines()

    assert out == [
        "Result: {'output': 'Hello, World!'}",
        "Events: True",
        "Status: healthy",
        "Connected: True",
        "Cleaned up 0 tasks",
        "Cleaned up 0 results",
        "Recent: 1",
        "Cleaned: 0",
    ]


SEED_001_MIGRATION = """
    import asyncio
    from omniq.models.config import SQLiteConfig, {config_class}
    from omniq.backend.sqlite import AsyncSQLiteBackend
    from {module} import Async{backend}
    from omniq.models.task import Task

    sqlite_config = SQLiteConfig(base_dir="old")
    target_config = {config}

    async def main():  # changed: the fragment awaits, so it needs a coroutine
        async with AsyncSQLiteBackend(sqlite_config) as old:  # changed: something to export
            for n in range(3):
                await old.queue.enqueue(Task(func="my_function", args=(n,)))

        # Export tasks from SQLite
        sqlite_backend = AsyncSQLiteBackend(sqlite_config)  # changed: SQLiteBackend is sync
        tasks = await sqlite_backend.queue.list_tasks()

        # Import to {backend}
        target_backend = Async{backend}(target_config)
        for task in tasks:
            await target_backend.queue.enqueue(task)

        print(await target_backend.queue.get_queue_size("default"))
        await sqlite_backend.close()  # changed: closed, as every connection should be
        await target_backend.close()

    asyncio.run(main())
"""


def test_seed_001_migration_from_sqlite(place: ScriptPlace) -> None:
    out = place.run(SEED_001_MIGRATION.format(**backend_lines(place))).stdout.split()

    assert out == ["3"]


SEED_003_MULTIPLE_QUEUES = """
    from omniq.queue import {cls}TaskQueue
    from omniq.workers import ThreadPoolWorker

    # changed: simple_task comes from the seed's earlier examples
    def simple_task(name):
        print(f"Hello {{name}}")
        return name

    # Create PostgreSQL queue with multiple named queues
    queue = {queue}

    # Create worker that processes queues in priority order
    worker = ThreadPoolWorker(queue=queue, max_workers=10)
    worker.start()

    # Enqueue tasks to different queues
    high_task_id = queue.enqueue(simple_task, func_args=dict(name="High Priority"), queue_name="high")
    medium_task_id = queue.enqueue(simple_task, func_args=dict(name="Medium Priority"), queue_name="medium")
    low_task_id = queue.enqueue(simple_task, func_args=dict(name="Low Priority"), queue_name="low")

    # Worker will process "high" queue tasks first, then "medium", then "low"

    # --- the test's check, not part of the seed
    print(worker.get_result(high_task_id, timeout=30), worker.get_result(medium_task_id, timeout=30),
          worker.get_result(low_task_id, timeout=30), sep="|")
"""


def test_seed_003_working_with_multiple_queues(place: ScriptPlace) -> None:
    queue_lines = {
        "postgres": f"""PostgresTaskQueue(
            project_name={place.project!r},  # changed: isolated
            host="localhost",
            port={service_address("postgres")[1] if place.backend == "postgres" else 0},
            username="postgres",
            password="secret",
            database="test",  # changed: isolated
            schema="{place.url.rpartition("schema=")[2]}",  # changed: isolated
            queues=["high", "medium", "low"]
        )""",
        "sqlite": f"""SQLiteTaskQueue(  # changed: SQLite
            project_name="my_project",
            base_dir="{place.folder}",
            queues=["high", "medium", "low"]
        )""",
        "redis": f"""RedisTaskQueue(  # changed: Redis
            project_name={place.project!r},
            host="localhost",
            port={service_address("redis")[1] if place.backend == "redis" else 0},
            database={REDIS_TEST_DB},
            queues=["high", "medium", "low"]
        )""",
    }
    script = SEED_003_MULTIPLE_QUEUES.format(
        cls={"postgres": "Postgres", "sqlite": "SQLite", "redis": "Redis"}[place.backend],
        queue=queue_lines[place.backend],
    )
    out = place.run(script).stdout

    assert out.splitlines()[-1] == "High Priority|Medium Priority|Low Priority"
    # the three tasks print from pool threads at once: their lines may interleave
    for name in ("High", "Medium", "Low"):
        assert f"Hello {name} Priority" in out


SEED_004_ASYNC = """
    import asyncio  # changed: top-level await needs a coroutine to run in
    from omniq import AsyncTaskQueue, Task

    # Create a task queue with async interface
    queue = AsyncTaskQueue(
        storage_type="{storage_type}",  # changed: was "memory"
        worker_type="async",
        max_workers=10
    )

    # Define an async task
    async def my_task(x, y):
        return x + y

    async def main():  # changed: top-level await needs a coroutine to run in
        # Enqueue task
        task_id = await queue.enqueue(my_task, args=(5, 10))

        # Get result
        result = await queue.get_result(task_id)
        print(f"Result: {{result}}")  # Result: 15

    asyncio.run(main())
"""

SEED_004_SYNC = """
    from omniq import TaskQueue, Task

    # Create a task queue with sync interface
    queue = TaskQueue(
        storage_type="{storage_type}",  # changed: was "sqlite" (on SQLite: as written)
        worker_type="thread",
        max_workers=5
    )

    # Define a sync task
    def my_task(x, y):
        return x + y

    # Enqueue task
    task_id = queue.enqueue(my_task, args=(5, 10))

    # Get result
    result = queue.get_result(task_id)
    print(f"Result: {{result}}")  # Result: 15
"""


@pytest.mark.parametrize("example", [SEED_004_ASYNC, SEED_004_SYNC], ids=["async", "sync"])
def test_seed_004_examples(place: ScriptPlace, example: str) -> None:
    # storage_type picks the backend; OMNIQ_TASK_QUEUE_URL says where it is (a fresh database)
    place.env.update(OMNIQ_TASK_QUEUE_URL=place.url, OMNIQ_PROJECT_NAME=place.project)

    done = place.run(example.format(storage_type=place.backend), timeout=60)

    assert done.stdout.strip() == "Result: 15"
