"""What seeds 003 and 004 say of NATS, as tests: ``AsyncNATSQueue``/``NATSQueue`` (003, storage
implementations), ``OMNIQ_TASK_QUEUE_TYPE=nats`` and ``OMNIQ_TASK_STORAGE_TYPE=nats`` (003/004
environment), "NATS Queue: Subject prefixes" for named queues (003), "NATS queue groups for
exclusive task consumption" (003), results in a KV store (004, Task 22), and the backend-based
usage of seed 003 with ``NATSBackend``. Clustering (004, Task 22) is in tests/backends/test_nats.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from omniq.storage.nats import AsyncNATSQueue, NATSQueue
from omniq.storage.nats._conn import delete_project
from tests.conftest import service_address

pytestmark = pytest.mark.services("nats")


def _url() -> str:
    host, port = service_address("nats")
    return f"nats://{host}:{port}"


def _new_project() -> str:
    return f"nats-seed-{uuid.uuid4().hex[:10]}"


async def _drop(project: str) -> None:
    async with AsyncNATSQueue(servers=[_url()], project_name=project) as cleaner:
        await delete_project(cleaner)


@pytest.fixture
async def project() -> AsyncIterator[str]:
    name = _new_project()
    yield name
    await _drop(name)


@pytest.fixture
def sync_project() -> Iterator[str]:
    name = _new_project()
    yield name
    asyncio.run(_drop(name))


def test_nats_queue_is_the_sync_wrapper_of_async_nats_queue(sync_project: str) -> None:
    """003: ``NATSQueue``: Sync wrapper around ``AsyncNATSQueue``."""
    with NATSQueue(servers=[_url()], project_name=sync_project, secret_key="k") as queue:
        task_id = queue.enqueue("operator:add", args=(1, 2))
        task = queue.dequeue()
        assert task is not None
        assert task.id == task_id
        assert queue.complete_sync(task.id, task.claim or "")
        assert queue.get_task(task_id).status.value == "success"


@pytest.mark.parametrize("variable", ["OMNIQ_TASK_QUEUE_TYPE", "OMNIQ_TASK_STORAGE_TYPE"])
async def test_the_environment_selects_nats_for_tasks_and_results(
    project: str, variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """003 ``OMNIQ_TASK_QUEUE_TYPE``/004 ``OMNIQ_TASK_STORAGE_TYPE`` = nats, with their URLs."""
    from omniq import AsyncOmniQ
    from omniq.config import reload_settings
    from omniq.storage.nats import AsyncNATSResultStorage

    url_variable = variable.replace("_TYPE", "_URL")
    monkeypatch.setenv(variable, "nats")
    monkeypatch.setenv(url_variable, _url())
    monkeypatch.setenv("OMNIQ_RESULT_STORAGE_TYPE", "nats")
    monkeypatch.setenv("OMNIQ_RESULT_STORAGE_URL", _url())
    monkeypatch.setenv("OMNIQ_SECRET_KEY", "seed-key")
    reload_settings()
    try:
        async with AsyncOmniQ(project_name=project) as oq:
            assert type(oq.task_queue) is AsyncNATSQueue
            assert type(oq.result_store) is AsyncNATSResultStorage
            task_id = await oq.enqueue("operator:mul", args=(6, 7))
            await oq.start_worker(concurrency=2)
            assert await oq.get_result(task_id, timeout=20) == 42
    finally:
        monkeypatch.undo()
        reload_settings()


async def test_each_named_queue_is_a_subject_under_the_project_prefix(project: str) -> None:
    """003: "NATS Queue: Subject prefixes" for multiple named queues."""
    async with AsyncNATSQueue(
        servers=[_url()], project_name=project, queues=["high", "low"], secret_key="k"
    ) as queue:
        await queue.enqueue("operator:add", args=(1, 1), queue_name="low")
        await queue.enqueue("operator:add", args=(2, 2), queue_name="high")
        await queue.enqueue("operator:add", args=(3, 3), queue_name="high")
        info = await queue.jetstream.stream_info(
            queue.names.stream, subjects_filter=f"{queue.names.subject_prefix}.q.>"
        )
        assert info.state.subjects == {
            f"omniq.{project}.q.high": 2,
            f"omniq.{project}.q.low": 1,
        }
        first = await queue.dequeue(["high", "low"])
        assert first is not None
        assert first.queue_name == "high"


async def test_workers_share_one_consumer_and_each_task_goes_to_one_of_them(project: str) -> None:
    """003: "NATS queue groups for exclusive task consumption": every worker pulls from the
    queue's one durable consumer, so each task is delivered to exactly one of them."""
    options = {"servers": [_url()], "project_name": project, "secret_key": "k"}
    async with AsyncNATSQueue(**options) as producer:
        ids = await producer.enqueue_many(
            [producer.build_task("operator:add", args=(i, i)) for i in range(200)]
        )
    seen: list[str] = []

    async def worker(n: int) -> None:
        async with AsyncNATSQueue(**options) as queue:
            while tasks := await queue.dequeue_many(limit=7, worker_id=f"w{n}", timeout=0.5):
                seen.extend(t.id for t in tasks)
                for task in tasks:
                    assert await queue.complete(task.id, task.claim or "")

    await asyncio.gather(*(worker(n) for n in range(4)))
    assert sorted(seen) == sorted(ids)


async def test_results_live_in_a_kv_bucket_with_a_ttl(project: str) -> None:
    """004 Task 22: "result storage using KV store"; the bucket's max age is the native TTL."""
    from omniq.models.result import ResultStatus, TaskResult
    from omniq.models.task import Task
    from omniq.storage.nats import AsyncNATSResultStorage

    options = {"servers": [_url()], "project_name": project, "secret_key": "k"}
    async with AsyncNATSResultStorage(results_max_age=3600, **options) as results:
        task = Task(func="operator:add", args=(1, 1))
        await results.set(TaskResult.for_task(task, ResultStatus.SUCCESS, result=2))
        assert (await results.get(task.id)).result == 2  # type: ignore[union-attr]
        bucket = await results.jetstream.key_value(results.names.results_bucket)
        status = await bucket.status()
        assert status.ttl == 3600


def test_the_backend_based_usage_of_seed_003_works_with_nats(sync_project: str) -> None:
    """003 "Backend-Based Usage", with the NATS backend in place of SQLite/File/PostgreSQL."""
    from omniq import OmniQ, ResultStore, TaskQueue
    from omniq.backend import NATSBackend

    nats_backend = NATSBackend(project_name=sync_project, servers=[_url()], secret_key="k")
    task_queue = TaskQueue.from_backend(nats_backend, queues=["high", "medium", "low"])
    result_store = ResultStore.from_backend(nats_backend)
    assert type(task_queue).__name__ == "NATSQueue"
    assert type(result_store).__name__ == "NATSResultStorage"

    with OmniQ.from_backend(nats_backend, worker_type="async") as oq:
        task_id = oq.enqueue("operator:add", args=(20, 22))
        oq.start_worker()
        assert oq.get_result(task_id, timeout=20) == 42
