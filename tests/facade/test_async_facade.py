"""AsyncOmniQ: construction, enqueue options, results, decorator, configuration entry points."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from omniq import AsyncOmniQ, AsyncTaskQueue, EventStore, ResultStore, Task, TaskQueue
from omniq.backend import create_backend
from omniq.backend.memory import AsyncMemoryBackend, MemoryBackend
from omniq.config import get_settings, reload_settings
from omniq.exceptions import FunctionNotFound, QueueNameError, SerializationError, TaskNotFound
from omniq.models import ResultStatus, TaskResult, TaskStatus
from omniq.storage.memory import AsyncMemoryEventStorage, AsyncMemoryQueue, AsyncMemoryResultStorage
from tests import tasks_fixture as tf


@pytest.fixture
async def oq() -> AsyncIterator[AsyncOmniQ]:
    tf.reset()
    async with AsyncOmniQ(project_name="facade", event_store=AsyncMemoryEventStorage()) as app:
        yield app


async def test_bare_constructor_uses_the_embedded_sqlite_default_in_base_dir() -> None:
    async with AsyncOmniQ() as oq:
        assert oq.task_queue.backend_name == "sqlite"
        assert oq.result_store.backend_name == "sqlite"
        assert oq.event_store is None
        assert oq.task_queue.stores_results_with(oq.result_store)
        base_dir = Path(get_settings().BASE_DIR)
        assert (base_dir / "default.db").exists()


async def test_components_are_chosen_independently() -> None:
    queue, results, events = (
        AsyncMemoryQueue(),
        AsyncMemoryResultStorage(),
        AsyncMemoryEventStorage(),
    )
    oq = AsyncOmniQ(project_name="p", task_queue=queue, result_store=results, event_store=events)
    assert (oq.task_queue, oq.result_store, oq.event_store) == (queue, results, events)
    assert oq.result_storage is results
    assert oq.event_storage is events


async def test_wrong_component_type_is_refused() -> None:
    with pytest.raises(TypeError, match="result_store"):
        AsyncOmniQ(result_store=AsyncMemoryQueue())  # type: ignore[arg-type]


async def test_enqueue_with_options_builds_the_task(oq: AsyncOmniQ) -> None:
    before = datetime.now(UTC)
    tid = await oq.enqueue(
        tf.add,
        func_args=dict(x=1, y=2),
        queue_name="low",
        priority=7,
        run_in=timedelta(seconds=100),
        ttl=timedelta(hours=1),
        result_ttl=timedelta(minutes=5),
        max_retries=4,
        timeout=30,
        metadata={"tenant": "acme"},
    )
    task = await oq.get_task(tid)
    assert task is not None
    assert task.func == "tests.tasks_fixture:add"
    assert task.kwargs == {"x": 1, "y": 2}
    assert task.args == ()
    assert task.queue_name == "low"
    assert task.priority == 7
    assert task.eta is not None
    assert task.eta >= before + timedelta(seconds=99)
    assert task.expires_at is not None
    assert task.expires_at >= before + timedelta(minutes=59)
    assert task.result_ttl == 300
    assert task.max_retries == 4
    assert task.timeout == 30
    assert task.metadata == {"tenant": "acme"}
    assert task.status is TaskStatus.PENDING


async def test_enqueue_without_queue_name_goes_to_default(oq: AsyncOmniQ) -> None:
    tid = await oq.enqueue(tf.add, args=(1, 2))
    task = await oq.get_task(tid)
    assert task is not None
    assert task.queue_name == "default"


async def test_enqueue_with_task_id_is_idempotent(oq: AsyncOmniQ) -> None:
    first = await oq.enqueue(tf.add, args=(1, 2), task_id="order-42")
    second = await oq.enqueue(tf.add, args=(9, 9), task_id="order-42")
    assert first == second == "order-42"
    task = await oq.get_task("order-42")
    assert task is not None
    assert task.args == (1, 2)
    assert await oq.get_queue_size() == 1


async def test_queue_built_with_queues_rejects_unknown_queue_listing_allowed_ones() -> None:
    oq = AsyncOmniQ(task_queue=AsyncMemoryQueue(queues=["high", "low"]))
    with pytest.raises(QueueNameError, match=r"'medium'.*\['high', 'low'\]"):
        await oq.enqueue(tf.add, args=(1, 2), queue_name="medium")
    assert await oq.get_queue_size("high") == 0


@pytest.mark.parametrize(
    "name", ["../etc", "q'; DROP TABLE tasks;--", "a:b", "{x}", "", "a b", "x" * 101]
)
async def test_malformed_queue_names_are_refused(oq: AsyncOmniQ, name: str) -> None:
    with pytest.raises(QueueNameError):
        await oq.enqueue(tf.add, args=(1, 2), queue_name=name)


async def test_unserializable_argument_fails_at_enqueue_naming_it(oq: AsyncOmniQ) -> None:
    numbers = (n for n in range(3))  # generators cannot be pickled, even by dill
    with pytest.raises(SerializationError, match=r"kwargs\['numbers'\]"):
        await oq.enqueue(tf.add, kwargs={"x": 1, "numbers": numbers})
    assert await oq.get_queue_size() == 0


async def test_string_func_resolves_import_path_and_refuses_unknown_names(oq: AsyncOmniQ) -> None:
    tid = await oq.enqueue("tests.tasks_fixture:add", args=(2, 3))
    await oq.start_worker()
    assert await oq.get_result(tid, timeout=5) == 5
    with pytest.raises(FunctionNotFound, match="my_unknown_function"):
        await oq.enqueue("my_unknown_function")


async def test_task_decorator_registers_name_defaults_and_enqueue(oq: AsyncOmniQ) -> None:
    @oq.task(name="facade.double", queue_name="math", max_retries=5, timeout=9)
    async def double(x: int) -> int:
        return 2 * x

    assert await double(4) == 8  # still callable as itself
    tid = await double.enqueue(21)
    task = await oq.get_task(tid)
    assert task is not None
    assert (task.func, task.queue_name, task.max_retries, task.timeout) == (
        "facade.double",
        "math",
        5,
        9,
    )
    by_name = await oq.enqueue("facade.double", args=(1,))
    await oq.start_worker(queues=["math"])
    assert await oq.get_result(tid, timeout=5) == 42
    assert await oq.get_result(by_name, timeout=5) == 2
    override = await double.enqueue_with(args=(1,), queue_name="default", priority=3)
    task = await oq.get_task(override)
    assert task is not None
    assert task.queue_name == "default"
    assert task.priority == 3


async def test_get_result_with_zero_timeout_returns_none_when_not_ready(oq: AsyncOmniQ) -> None:
    tid = await oq.enqueue(tf.add, args=(1, 2))
    assert await oq.get_result(tid, timeout=0) is None


async def test_get_result_waits_for_a_worker_started_later(oq: AsyncOmniQ) -> None:
    tid = await oq.enqueue(tf.add, args=(1, 2))

    async def start_soon() -> None:
        await asyncio.sleep(0.05)
        await oq.start_worker()

    starter = asyncio.create_task(start_soon())
    assert await oq.get_result(tid, timeout=5) == 3
    await starter


async def test_get_result_times_out_with_none(oq: AsyncOmniQ) -> None:
    tid = await oq.enqueue(tf.add, args=(1, 2))
    assert await oq.get_result(tid, timeout=0.05) is None


async def test_latest_result_of_a_schedule(oq: AsyncOmniQ) -> None:
    for value in (1, 2):
        await oq.result_store.set(
            TaskResult(task_id=f"run-{value}", schedule_id="nightly", result=value)
        )
    assert await oq.get_result(schedule_id="nightly", kind="latest") == 2


async def test_get_task_result_gives_the_full_record(oq: AsyncOmniQ) -> None:
    await oq.start_worker()
    tid = await oq.enqueue(tf.boom, max_retries=0)
    result = await oq.get_task_result(tid, timeout=5)
    assert result is not None
    assert result.status is ResultStatus.ERROR
    assert result.error_type == "ValueError"


async def test_cancel_unknown_task_raises_task_not_found(oq: AsyncOmniQ) -> None:
    with pytest.raises(TaskNotFound, match="nope"):
        await oq.cancel("nope")


async def test_enqueue_many_takes_tasks_and_option_dicts(oq: AsyncOmniQ) -> None:
    ids = await oq.enqueue_many(
        [
            Task(func="tests.tasks_fixture:add", args=(1, 1)),
            {"func": tf.add, "args": (2, 2), "queue_name": "b"},
        ]
    )
    await oq.start_worker(queues=["default", "b"])
    assert [await oq.get_result(t, timeout=5) for t in ids] == [2, 4]


async def test_stats_report_queues_and_worker(oq: AsyncOmniQ) -> None:
    await oq.enqueue(tf.add, args=(1, 1), queue_name="s")
    stats = await oq.stats()
    assert stats["queues"] == {"s": {"pending": 1}}


async def test_health_check_reports_each_component(oq: AsyncOmniQ) -> None:
    health = await oq.health_check()
    assert health["status"] == "healthy"
    assert set(health) >= {"task_queue", "result_store", "event_store"}


async def test_from_backend_with_one_backend() -> None:
    backend = AsyncMemoryBackend(project_name="b1")
    oq = AsyncOmniQ.from_backend(backend, worker_type="async", worker_config={"max_workers": 4})
    assert oq.task_queue is backend.queue
    assert oq.result_store is backend.result_storage
    assert oq.event_store is None
    assert oq.worker_config == {"max_workers": 4}


async def test_from_backend_mixing_backends_for_results_and_events() -> None:
    tasks, results, events = AsyncMemoryBackend(), AsyncMemoryBackend(), AsyncMemoryBackend()
    oq = AsyncOmniQ.from_backend(tasks, result_store_backend=results, event_store_backend=events)
    assert oq.task_queue is tasks.queue
    assert oq.result_store is results.result_storage
    assert oq.event_store is events.event_storage


async def test_from_dict_and_from_config_file(tmp_path: Path) -> None:
    config = {
        "project_name": "cfg",
        "task_queue": {"type": "memory", "config": {"queues": ["high", "medium", "low"]}},
        "result_store": {"type": "memory"},
        "event_store": {"url": "memory://"},
        "worker": {"type": "async", "config": {"max_workers": 3}},
    }
    oq = AsyncOmniQ.from_dict(config)
    assert oq.project_name == "cfg"
    assert oq.task_queue.queues == ["high", "medium", "low"]
    assert oq.event_store is not None
    assert oq.worker_config == {"max_workers": 3}
    path = tmp_path / "config.yaml"
    path.write_text(
        "project_name: cfg\n"
        "task_queue:\n  type: memory\n  config:\n    queues: [high, low]\n"
        "result_store:\n  type: memory\n"
        "worker:\n  type: async\n  config:\n    max_workers: 10\n"
    )
    from_file = AsyncOmniQ.from_config_file(str(path))
    assert from_file.task_queue.queues == ["high", "low"]
    async with from_file:
        await from_file.start_worker()
        tid = await from_file.enqueue(tf.add, args=(1, 2), queue_name="low")
        assert await from_file.get_result(tid, timeout=5) == 3


async def test_from_env_reads_omniq_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIQ_TASK_QUEUE_URL", "memory://")
    monkeypatch.setenv("OMNIQ_EVENT_STORAGE_URL", "memory://")
    monkeypatch.setenv("OMNIQ_PROJECT_NAME", "envproj")
    reload_settings()
    try:
        oq = AsyncOmniQ.from_env()
        assert oq.project_name == "envproj"
        assert oq.event_store is not None
    finally:
        monkeypatch.delenv("OMNIQ_TASK_QUEUE_URL")
        monkeypatch.delenv("OMNIQ_EVENT_STORAGE_URL")
        monkeypatch.delenv("OMNIQ_PROJECT_NAME")
        reload_settings()


async def test_create_backend_from_url_and_type() -> None:
    assert isinstance(create_backend(url="memory://"), AsyncMemoryBackend)
    assert isinstance(create_backend("memory"), AsyncMemoryBackend)


async def test_components_from_backend_in_seed_003_form() -> None:
    backend = AsyncMemoryBackend()
    queue = TaskQueue.from_backend(backend, queues=["high", "medium", "low"])
    assert isinstance(queue, AsyncMemoryQueue)
    assert queue.queues == ["high", "medium", "low"]
    assert ResultStore.from_backend(backend) is backend.result_storage
    assert EventStore.from_backend(backend) is backend.event_storage
    sync_backend = MemoryBackend()
    sync_queue = TaskQueue.from_backend(sync_backend, queues=["a"])
    assert sync_queue.queues == ["a"]
    assert hasattr(sync_queue, "enqueue_sync")


async def test_self_contained_task_queue_starts_its_worker_on_first_use() -> None:
    queue = AsyncTaskQueue(storage_type="memory", worker_type="async", max_workers=2)
    try:
        tid = await queue.enqueue(tf.add, args=(5, 10))
        assert await queue.get_result(tid, timeout=5) == 15
        assert queue.worker is not None
        assert queue.worker.concurrency == 2
    finally:
        await queue.close()


async def test_context_manager_stops_the_worker_and_closes() -> None:
    async with AsyncOmniQ() as oq:
        await oq.start_worker()
        worker = oq.worker
        assert worker is not None
        assert worker.is_running
    assert not worker.is_running
    assert oq.worker is None


async def test_get_result_of_a_task_whose_result_already_expired_returns_none_at_once() -> None:
    async with AsyncOmniQ() as oq:
        await oq.start_worker()
        tid = await oq.enqueue(tf.add, args=(1, 2), result_ttl=0)
        task = None
        for _ in range(500):
            task = await oq.get_task(tid)
            if task is not None and task.is_final:
                break
            await asyncio.sleep(0.01)
        assert await asyncio.wait_for(oq.get_result(tid), timeout=5) is None
