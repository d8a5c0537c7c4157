"""Seed 003's file-backend examples, run as written: ``FileTaskQueue``, ``AsyncFileTaskQueue``,
``FileResultStorage``, ``FileBackend``, ``FileTaskQueueConfig`` and the cloud ``base_dir`` forms
(``s3://`` pointed at the local moto server and ``abfs://`` at Azurite through
``storage_options``). Relative paths are run from a temporary working directory."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from tests.backends.object_servers import shared_azurite, shared_s3


def simple_task(name: str) -> str:
    print(f"Hello {name}")
    return name


async def async_task(name: str) -> str:
    print(f"Hello {name}")
    return name


def sync_task(x: int, y: int) -> int:
    return x * y


async def async_add(x: int, y: int) -> int:
    await asyncio.sleep(0.01)
    return x + y


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_component_based_usage_with_a_file_queue(in_tmp: Path) -> None:
    from omniq.queue import FileTaskQueue
    from omniq.storage import SQLiteResultStorage
    from omniq.workers import ThreadPoolWorker

    queue = FileTaskQueue(
        project_name="my_project", base_dir="some/path", queues=["low", "medium", "high"]
    )
    result_store = SQLiteResultStorage(project_name="my_project", base_dir="some/path")
    worker = ThreadPoolWorker(queue=queue, result_store=result_store, max_workers=20)
    worker.start()
    try:
        task_id = queue.enqueue(func=simple_task, func_args=dict(name="Tom"), queue_name="low")
        assert worker.get_result(task_id, timeout=20) == "Tom"
        result = result_store.get(task_id)
    finally:
        worker.stop()
    assert result is not None
    assert result.result == "Tom"
    assert (in_tmp / "some" / "path" / "my_project" / "state").is_file()


def test_stacked_context_managers_with_a_file_queue() -> None:
    from omniq.queue import FileTaskQueue
    from omniq.storage import SQLiteResultStorage
    from omniq.workers import ThreadPoolWorker

    with (
        FileTaskQueue(project_name="my_project", base_dir="some/path") as queue,
        SQLiteResultStorage(project_name="my_project", base_dir="some/path") as result_store,
        ThreadPoolWorker(queue=queue, result_store=result_store) as worker,
    ):
        task_id = queue.enqueue(simple_task, func_args=dict(name="Tom"))
        assert worker.get_result(task_id, timeout=20) == "Tom"
        result = result_store.get(task_id)
    assert result is not None
    assert result.result == "Tom"


def test_file_backend_based_usage() -> None:
    from omniq import EventStore, OmniQ, ResultStore, TaskQueue
    from omniq.backend import FileBackend, SQLiteBackend

    sqlite_backend = SQLiteBackend(project_name="my_project", base_dir="some/path")
    file_backend = FileBackend(project_name="my_project", base_dir="some/path")

    oq = OmniQ.from_backend(
        backend=file_backend,  # For task queue
        result_store_backend=sqlite_backend,  # For result storage
        event_store_backend=file_backend,
        worker_type="async",
        worker_config={"max_workers": 20},
    )
    try:
        oq.start_worker()
        task_id = oq.enqueue(func=simple_task, func_args=dict(name="Tom"))
        assert oq.get_result(task_id, timeout=20) == "Tom"
    finally:
        oq.stop_worker()
        oq.close()

    task_queue = TaskQueue.from_backend(file_backend, queues=["high", "medium", "low"])
    result_store = ResultStore.from_backend(sqlite_backend)
    event_store = EventStore.from_backend(file_backend)
    assert type(task_queue).__name__ == "FileQueue"
    assert type(result_store).__name__ == "SQLiteResultStorage"
    assert type(event_store).__name__ == "FileEventStorage"


def test_file_backend_alone_runs_a_task_and_logs_its_events() -> None:
    from omniq import OmniQ
    from omniq.backend import FileBackend

    file_backend = FileBackend(project_name="my_project", base_dir="some/path")
    oq = OmniQ.from_backend(
        file_backend, worker_type="thread_pool", worker_config={"max_workers": 4}
    )
    try:
        oq.start_worker()
        task_id = oq.enqueue(func=simple_task, func_args=dict(name="Tom"))
        assert oq.get_result(task_id, timeout=20) == "Tom"
    finally:
        oq.stop_worker()
        oq.close()


def test_configuration_based_usage_with_file_task_queue_config() -> None:
    from omniq.models import FileTaskQueueConfig
    from omniq.queue import FileTaskQueue

    queue = FileTaskQueue.from_config(
        FileTaskQueueConfig(
            project_name="my_project", base_dir="some/path", queues=["high", "medium", "low"]
        )
    )
    with queue:
        task_id = queue.enqueue(simple_task, func_args=dict(name="Tom"), queue_name="high")
        assert queue.get_task(task_id) is not None
    assert queue.queues == ["high", "medium", "low"]


def test_sync_and_async_tasks_on_an_async_worker_with_a_file_queue() -> None:
    from omniq.queue import FileTaskQueue
    from omniq.workers import AsyncWorker

    queue = FileTaskQueue(project_name="my_project", base_dir="some/path")
    worker = AsyncWorker(queue=queue, max_workers=10)
    worker.start()
    try:
        sync_task_id = queue.enqueue(sync_task, func_args=dict(x=5, y=10))
        async_task_id = queue.enqueue(async_add, func_args=dict(x=5, y=10))
        assert worker.get_result(sync_task_id, timeout=20) == 50
        assert worker.get_result(async_task_id, timeout=20) == 15
    finally:
        worker.stop()


async def test_async_omniq_with_a_file_queue_schedules_and_delays() -> None:
    from omniq import AsyncOmniQ
    from omniq.queue import AsyncFileTaskQueue
    from omniq.storage import SQLiteResultStorage

    oq = AsyncOmniQ(
        project_name="my_project",
        task_queue=AsyncFileTaskQueue(base_dir="some/path", queues=["low", "medium", "high"]),
        result_store=SQLiteResultStorage(base_dir="some/path"),
    )
    await oq.start_worker()
    try:
        delayed = await oq.enqueue(
            func=async_task,
            func_args=dict(name="Tom"),
            queue_name="low",
            run_in=dt.timedelta(seconds=100),
            ttl=dt.timedelta(hours=1),
            result_ttl=dt.timedelta(minutes=5),
        )
        assert await oq.get_result(delayed, timeout=0) is None  # 100 s away
        schedule_id = await oq.schedule(
            func=async_task,
            func_args=dict(name="Tom"),
            interval=dt.timedelta(seconds=10),
            queue_name="low",
        )
        latest = None
        for _ in range(200):
            latest = await oq.get_result(schedule_id=schedule_id, kind="latest")
            if latest is not None:
                break
            await asyncio.sleep(0.05)
        assert latest == "Tom"
    finally:
        await oq.stop_worker()
        await oq.close()


def test_local_and_s3_and_azure_queues_with_storage_options() -> None:
    from omniq import OmniQ
    from omniq.queue import FileTaskQueue
    from omniq.storage import FileResultStorage

    # Using local filesystem
    local_queue = FileTaskQueue(
        project_name="my_project",
        base_dir="/tmp/omniq-seed-003/local-storage",
        queues=["high", "medium", "low"],
    )
    with local_queue:
        assert local_queue.get_queue_size("high") >= 0

    s3 = shared_s3()
    bucket = s3.create_bucket()
    # Using S3: the seed's names, pointed at the local S3 server
    s3_queue = FileTaskQueue(
        project_name="my_project",
        base_dir=f"s3://{bucket}/omniq",
        queues=["high", "medium", "low"],
        storage_options={"key": "access_key", "secret": "secret_key", "endpoint_url": s3.endpoint},
    )
    # Using Azure Blob Storage: Azurite's account through the seed's option names
    azure = shared_azurite()
    container = azure.create_container()
    azure_queue = FileTaskQueue(
        project_name="my_project",
        base_dir=f"abfs://{container}/omniq",
        queues=["high", "medium", "low"],
        storage_options=azure.options(),
    )
    with azure_queue:
        task_id = azure_queue.enqueue(simple_task, func_args=dict(name="Tom"), queue_name="low")
        assert azure_queue.get_task(task_id) is not None

    # Using Google Cloud Storage: no GCS server can run here, and the seed's token file does
    # not exist, which is said at once, naming the place
    from omniq.exceptions import ConfigError

    with pytest.raises(ConfigError, match=r"gs://my-bucket/omniq.*path/to/token\.json"):
        FileTaskQueue(
            project_name="my_project",
            base_dir="gs://my-bucket/omniq",
            queues=["high", "medium", "low"],
            storage_options={"token": "path/to/token.json"},
        )

    oq = OmniQ(
        project_name="my_project",
        task_queue=s3_queue,
        result_store=FileResultStorage(
            base_dir=f"s3://{bucket}/omniq/results",
            storage_options={
                "key": "access_key",
                "secret": "secret_key",
                "endpoint_url": s3.endpoint,
            },
        ),
    )
    try:
        oq.start_worker()
        task_id = oq.enqueue(func=simple_task, func_args=dict(name="Tom"), queue_name="high")
        assert oq.get_result(task_id, timeout=30) == "Tom"
    finally:
        oq.stop_worker()
        oq.close()
