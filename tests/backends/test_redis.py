"""Redis-specific behaviour: the seeds/001 examples as written, the key layout (one Cluster slot
per project), blocking wake-ups, many worker processes on one Redis, and leases of a worker that
dies. The shared semantics are proved by tests/conformance (``-k redis``)."""

from __future__ import annotations

import asyncio
import multiprocessing
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest

aioredis = pytest.importorskip("redis.asyncio")

from redis.crc import key_slot  # noqa: E402

from omniq._time import utcnow  # noqa: E402
from omniq.backend import create_backend  # noqa: E402
from omniq.backend.redis import AsyncRedisBackend, RedisBackend  # noqa: E402
from omniq.exceptions import BackendUnavailable, ConfigError  # noqa: E402
from omniq.models.config import RedisConfig  # noqa: E402
from omniq.models.event import EventType, TaskEvent  # noqa: E402
from omniq.models.result import ResultStatus, TaskResult  # noqa: E402
from omniq.models.task import Task, TaskStatus  # noqa: E402
from omniq.storage.redis import (  # noqa: E402
    AsyncRedisEventStorage,
    AsyncRedisQueue,
    AsyncRedisResultStorage,
    RedisQueue,
)
from omniq.workers import AsyncWorker  # noqa: E402
from tests.conftest import service_address  # noqa: E402

pytestmark = pytest.mark.services("redis")

TASK = "tests.backends.test_redis:record_execution"
DOUBLE = "tests.backends.test_redis:double"


# -- helpers -------------------------------------------------------------------------------------
async def _unlink(pattern: str) -> None:
    host, port = service_address("redis")
    client = aioredis.Redis(host=host, port=port)
    try:
        keys = [k async for k in client.scan_iter(match=pattern, count=10_000)]
        if keys:
            await client.unlink(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """A key prefix of this test alone; every key under it is unlinked afterwards."""
    name = f"omniq-test-{uuid.uuid4().hex[:12]}"
    yield name
    await _unlink(f"{name}:*")


@pytest.fixture
def config(prefix: str) -> RedisConfig:
    host, port = service_address("redis")
    return RedisConfig(
        host=host,
        port=port,
        tasks_prefix=f"{prefix}:tasks",
        results_prefix=f"{prefix}:results",
        events_prefix=f"{prefix}:events",
    )


@pytest.fixture
async def project() -> AsyncIterator[str]:
    """A project name of this test alone (the hash tag of its keys), cleaned up afterwards."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    await _unlink(f"*{{{name}}}*")


def _client_for_checks() -> Any:
    host, port = service_address("redis")
    return aioredis.Redis(host=host, port=port)


def _options(project: str, **extra: Any) -> dict[str, Any]:
    host, port = service_address("redis")
    return {"host": host, "port": port, "project_name": project, **extra}


# -- seeds/001, as written -----------------------------------------------------------------------
async def test_seed_basic_usage_enqueues_and_dequeues(config: RedisConfig) -> None:
    async with AsyncRedisBackend(config) as backend:
        task = Task(
            func="my_function",
            args=(1, 2, 3),
            kwargs={"key": "value"},
            queue_name="default",
        )

        task_id = await backend.queue.enqueue(task)
        assert task_id == task.id

        dequeued_task = await backend.queue.dequeue(["default"])
        assert dequeued_task is not None
        assert dequeued_task.id == task_id
        assert dequeued_task.args == (1, 2, 3)
        assert dequeued_task.kwargs == {"key": "value"}


def test_seed_synchronous_usage_counts_the_queue(config: RedisConfig) -> None:
    with RedisBackend(config) as backend:
        task = Task(func="my_function", args=(1, 2, 3), queue_name="default")

        task_id = backend.queue.enqueue_sync(task)
        assert task_id == task.id

        size = backend.queue.get_queue_size_sync("default")
        assert size == 1


async def test_seed_result_storage_stores_with_a_native_ttl(
    config: RedisConfig, prefix: str
) -> None:
    async with AsyncRedisBackend(config) as backend:
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

    client = aioredis.Redis(host=config.host, port=config.port)
    try:
        ttl_ms = await client.pttl(f"{prefix}:results:{{default}}:result:task-123")
    finally:
        await client.aclose()
    assert 23 * 3600 * 1000 < ttl_ms <= 24 * 3600 * 1000


async def test_seed_event_logging_and_queries(config: RedisConfig) -> None:
    async with AsyncRedisBackend(config) as backend:
        event = TaskEvent(
            task_id="task-123",
            event_type=EventType.COMPLETED,
            details={"duration": 1.5, "worker": "worker-001"},
        )
        await backend.event_storage.log_event(event)

        events = await backend.event_storage.get_events(task_id="task-123", limit=10)
        assert events == [event]

        recent_events = await backend.event_storage.get_events(
            start_time=datetime.utcnow() - timedelta(hours=1), limit=100
        )
        assert [e.id for e in recent_events] == [event.id]

        cutoff_time = datetime.utcnow() - timedelta(days=7)
        assert await backend.event_storage.cleanup_old_events(cutoff_time) == 0
        assert await backend.event_storage.cleanup_old_events(utcnow() + timedelta(seconds=1)) == 1
        assert await backend.event_storage.get_events(task_id="task-123") == []


async def test_seed_health_check_reports_status_and_connection(config: RedisConfig) -> None:
    async with AsyncRedisBackend(config) as backend:
        health = await backend.health_check()

    assert health["status"] == "healthy"
    assert health["connected"] is True


async def test_seed_cleanup_reports_expired_tasks_and_results(config: RedisConfig) -> None:
    async with AsyncRedisBackend(config) as backend:
        await backend.queue.enqueue(DOUBLE, ttl=0.05)
        await backend.result_storage.set(TaskResult(task_id="t1", ttl=timedelta(seconds=0.05)))
        await asyncio.sleep(0.15)

        cleanup_stats = await backend.cleanup()

    assert cleanup_stats["expired_tasks"] == 1
    assert cleanup_stats["expired_results"] == 1


def test_redis_config_has_the_documented_defaults() -> None:
    config = RedisConfig()

    assert (config.host, config.port, config.database, config.password) == (
        "localhost",
        6379,
        0,
        None,
    )
    assert config.max_connections == 10
    assert (config.socket_timeout, config.socket_connect_timeout) == (30.0, 30.0)
    assert config.retry_on_timeout is True
    assert config.ssl is False
    assert (config.tasks_prefix, config.results_prefix, config.events_prefix) == (
        "omniq:tasks",
        "omniq:results",
        "omniq:events",
    )
    assert config.url is None


def test_redis_config_repr_masks_the_password() -> None:
    config = RedisConfig(password="hunter2", url="redis://:hunter2@db.example:6379/0")

    assert "hunter2" not in repr(config)


# -- construction ---------------------------------------------------------------------------------
async def test_backend_from_url_uses_the_database_in_the_url(project: str) -> None:
    host, port = service_address("redis")
    backend = create_backend(url=f"redis://{host}:{port}/0", project_name=project)
    assert isinstance(backend, AsyncRedisBackend)

    async with backend:
        task_id = await backend.queue.enqueue(DOUBLE)
        assert await backend.queue.get_queue_size() == 1
        assert (await backend.queue.get_task(task_id)) is not None


async def test_backend_from_keyword_options(project: str) -> None:
    async with AsyncRedisBackend(**_options(project)) as backend:
        await backend.queue.enqueue(DOUBLE)
        assert await backend.queue.get_queue_size() == 1


async def test_one_redis_config_builds_every_component(config: RedisConfig) -> None:
    async with (
        AsyncRedisQueue.from_config(config) as queue,
        AsyncRedisResultStorage.from_config(config) as results,
        AsyncRedisEventStorage.from_config(config) as events,
    ):
        task_id = await queue.enqueue(DOUBLE, args=(2,))
        await results.set(TaskResult(task_id=task_id, result=4))
        await events.log_event(TaskEvent(task_id=task_id, event_type=EventType.ENQUEUED))

        assert await queue.get_queue_size() == 1
        stored = await results.get(task_id)
        assert stored is not None
        assert stored.result == 4
        assert [e.task_id for e in await events.get_events(task_id=task_id)] == [task_id]


def test_sync_queue_is_usable_directly(project: str) -> None:
    with RedisQueue(**_options(project)) as queue:
        task_id = queue.enqueue(DOUBLE, args=(1,))
        task = queue.dequeue()

        assert task is not None
        assert task.id == task_id
        assert queue.complete_sync(task.id, task.claim or "") is True


def test_rediss_url_selects_tls_connections() -> None:
    from redis.asyncio import SSLConnection

    queue = AsyncRedisQueue(url="rediss://cache.example:6380/2")

    client = queue._conn.client()
    assert client.connection_pool.connection_class is SSLConnection
    assert client.connection_pool.connection_kwargs["db"] == 2


def test_unsupported_url_scheme_raises_naming_it() -> None:
    with pytest.raises(ConfigError, match="'redis\\+proxy'"):
        AsyncRedisQueue(url="redis+proxy://localhost:26379/mymaster")


def test_a_sentinel_url_names_the_sentinels_the_master_and_the_database() -> None:
    queue = AsyncRedisQueue(
        url="redis+sentinel://:pw@s1.example:26380,s2.example/shop/3?sentinel_password=spw"
    )

    conn = queue._conn
    assert conn.mode == "sentinel"
    assert conn.target == (
        "sentinel",
        "shop",
        (("s1.example", 26380), ("s2.example", 26379)),
        3,
    )
    assert conn.topology.sentinel_kwargs["password"] == "spw"
    assert conn.topology.redis_kwargs["password"] == "pw"
    assert "pw" not in conn.describe()


def test_sentinel_options_build_the_same_connection_as_the_url() -> None:
    by_url = AsyncRedisQueue(url="redis+sentinel://a:1,b:2/main/1")
    by_options = AsyncRedisQueue(sentinels=["b:2", "a:1"], sentinel_master="main", database=1)

    assert by_url._conn.target == by_options._conn.target


def test_a_cluster_url_and_cluster_nodes_name_the_startup_nodes() -> None:
    by_url = AsyncRedisQueue(url="redis+cluster://n1:7000,n2:7001")
    by_options = AsyncRedisQueue(cluster_nodes=["n2:7001", "n1:7000"])
    by_host = AsyncRedisQueue(host="n1", port=7000, cluster=True)

    assert by_url._conn.mode == by_options._conn.mode == by_host._conn.mode == "cluster"
    assert (
        by_url._conn.target == by_options._conn.target == ("cluster", (("n1", 7000), ("n2", 7001)))
    )
    assert by_host._conn.target == ("cluster", (("n1", 7000),))


def test_a_cluster_with_a_database_other_than_zero_raises_naming_it() -> None:
    with pytest.raises(ConfigError, match="database=2"):
        AsyncRedisQueue(cluster=True, database=2)
    with pytest.raises(ConfigError, match="database=5"):
        AsyncRedisQueue(url="redis+cluster://n1:7000/5")


def test_sentinel_and_cluster_together_raise() -> None:
    with pytest.raises(ConfigError, match="Sentinel or Cluster"):
        AsyncRedisQueue(sentinels=["s:26379"], cluster=True)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"sentinels": ["s1:notaport"]}, "s1:notaport"),
        ({"sentinels": "s1:26379"}, "s1:26379"),
        ({"cluster_nodes": ["n1:99999"]}, "n1:99999"),
        ({"url": "redis+sentinel://s1/m?socket_timeout=1"}, "socket_timeout"),
        ({"url": "redis+sentinel://s1/m/x"}, "'x'"),
        ({"sentinels": ["s1"], "sentinel_master": ""}, "sentinel_master"),
    ],
)
def test_bad_sentinel_or_cluster_settings_raise_naming_the_value(
    options: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigError, match=__import__("re").escape(named)):
        AsyncRedisQueue(**options)


def test_redis_config_carries_sentinel_and_cluster_settings_to_every_component() -> None:
    config = RedisConfig(
        sentinels=["s1:26379"], sentinel_master="main", sentinel_password="hunter3"
    )

    for component in (
        AsyncRedisQueue.from_config(config),
        AsyncRedisResultStorage.from_config(config),
        AsyncRedisEventStorage.from_config(config),
    ):
        assert component._conn.target == ("sentinel", "main", (("s1", 26379),), 0)
    assert "hunter3" not in repr(config)
    assert RedisConfig(cluster=True).cluster is True


def test_a_sentinel_password_in_the_url_is_never_shown() -> None:
    url = "redis+sentinel://:hunter4@s1:26379/main/0?sentinel_password=hunter5"

    assert "hunter" not in repr(RedisConfig(url=url))
    with pytest.raises(ConfigError) as raised:
        AsyncRedisQueue(url=f"{url}&socket_timeout=1")
    assert "socket_timeout" in str(raised.value)
    assert "hunter" not in str(raised.value)


def test_sentinel_and_cluster_urls_select_the_redis_backend() -> None:
    for url in ("redis+sentinel://s1/m", "rediss+sentinel://s1/m", "redis+cluster://n1:7000"):
        assert isinstance(create_backend(url=url), AsyncRedisBackend)


def test_prefix_with_a_brace_raises_naming_it() -> None:
    with pytest.raises(ConfigError, match="tasks_prefix"):
        AsyncRedisQueue(tasks_prefix="bad{prefix}")


async def test_priority_beyond_the_exact_range_raises_naming_it(project: str) -> None:
    async with AsyncRedisQueue(**_options(project)) as queue:
        with pytest.raises(ValueError, match=str(2**60)):
            await queue.enqueue(DOUBLE, priority=2**60)

        assert await queue.get_queue_size() == 0


async def test_unreachable_server_raises_backend_unavailable_naming_it() -> None:
    queue = AsyncRedisQueue(host="127.0.0.1", port=1, socket_connect_timeout=1.0)

    with pytest.raises(BackendUnavailable, match=r"127\.0\.0\.1:1\b"):
        await queue.connect()
    health = await queue.health_check()
    assert health["status"] == "unhealthy"
    assert health["connected"] is False


def test_public_names_are_importable_lazily() -> None:
    from omniq.queue import AsyncRedisTaskQueue, RedisTaskQueue
    from omniq.storage import RedisEventStorage, RedisResultStorage
    from omniq.storage import RedisQueue as LazyRedisQueue

    assert AsyncRedisTaskQueue is AsyncRedisQueue
    assert RedisTaskQueue is RedisQueue
    assert LazyRedisQueue is RedisQueue
    assert RedisResultStorage.__name__ == "RedisResultStorage"
    assert RedisEventStorage.__name__ == "RedisEventStorage"


# -- key layout -----------------------------------------------------------------------------------
async def test_every_key_of_a_project_hashes_to_one_cluster_slot(project: str) -> None:
    async with AsyncRedisBackend(**_options(project)) as backend:
        await backend.queue.enqueue(DOUBLE, queue_name="a", priority=3)
        await backend.queue.enqueue(DOUBLE, queue_name="b", run_in=60, ttl=120)
        task = await backend.queue.dequeue(["a"])
        assert task is not None
        await backend.queue.complete(
            task.id,
            task.claim or "",
            TaskResult(task_id=task.id, ttl=60),
            result_storage=backend.result_storage,
        )
        await backend.event_storage.log_event(
            TaskEvent(task_id=task.id, event_type=EventType.COMPLETED, queue_name="a")
        )

    client = _client_for_checks()
    try:
        keys = [k.decode() async for k in client.scan_iter(match=f"*{{{project}}}*")]
    finally:
        await client.aclose()
    assert any(k.startswith(f"omniq:tasks:{{{project}}}:task:") for k in keys)
    assert any(k.startswith(f"omniq:results:{{{project}}}:result:") for k in keys)
    assert any(k.startswith(f"omniq:events:{{{project}}}:event:") for k in keys)
    assert {key_slot(k.encode()) for k in keys} == {key_slot(project.encode())}


async def test_completion_writes_results_in_the_same_script_when_they_share_the_server(
    project: str,
) -> None:
    async with (
        AsyncRedisQueue(**_options(project)) as queue,
        AsyncRedisResultStorage(**_options(project)) as same,
        AsyncRedisResultStorage(**_options(f"{project}-other")) as other,
    ):
        assert queue.stores_results_with(same) is True
        assert queue.stores_results_with(other) is False

        await queue.enqueue(DOUBLE)
        task = await queue.dequeue()
        assert task is not None
        assert await queue.complete(
            task.id, task.claim or "", TaskResult(task_id=task.id, result=7), result_storage=same
        )

        stored = await same.get(task.id)
        assert stored is not None
        assert stored.result == 7
    await _unlink(f"*{{{project}-other}}*")


async def test_the_dependency_index_names_waiting_tasks_and_is_dropped_once_settled(
    project: str,
) -> None:
    async with AsyncRedisQueue(**_options(project)) as queue:
        parent = await queue.enqueue(DOUBLE)
        child = await queue.enqueue(DOUBLE, depends_on=[parent])
        deps_key = f"omniq:tasks:{{{project}}}:deps:{parent}"
        client = _client_for_checks()
        try:
            assert await client.smembers(deps_key) == {child.encode()}
            task = await queue.dequeue()
            assert task is not None
            assert await queue.complete(task.id, task.claim or "")

            assert await client.exists(deps_key) == 0
        finally:
            await client.aclose()
        promoted = await queue.get_task(child)
        assert promoted is not None
        assert promoted.status is TaskStatus.PENDING


async def test_a_dependent_of_a_finished_task_is_not_indexed(project: str) -> None:
    """Nothing would ever read (and drop) the set of a task that is already final."""
    async with AsyncRedisQueue(**_options(project)) as queue:
        parent = await queue.enqueue(DOUBLE)
        task = await queue.dequeue()
        assert task is not None
        assert await queue.complete(task.id, task.claim or "")

        child = await queue.enqueue(DOUBLE, depends_on=[parent])

        client = _client_for_checks()
        try:
            assert await client.exists(f"omniq:tasks:{{{project}}}:deps:{parent}") == 0
        finally:
            await client.aclose()
        stored = await queue.get_task(child)
        assert stored is not None
        assert stored.status is TaskStatus.PENDING


# -- wake-ups without polling ---------------------------------------------------------------------
async def _blocked_clients(command: str) -> int:
    client = _client_for_checks()
    try:
        clients = await client.client_list()
    finally:
        await client.aclose()
    return sum(1 for c in clients if c.get("cmd") == command)


async def test_idle_claimer_blocks_in_blpop_and_wakes_on_enqueue(project: str) -> None:
    async with AsyncRedisQueue(**_options(project)) as queue:
        before = await _blocked_clients("blpop")
        waiting = asyncio.create_task(queue.dequeue(timeout=30))
        await asyncio.sleep(0.2)
        assert await _blocked_clients("blpop") == before + 1

        task_id = await queue.enqueue(DOUBLE)
        task = await asyncio.wait_for(waiting, 10)

    assert task is not None
    assert task.id == task_id


async def test_stop_ends_a_blocked_claim_and_drops_its_connection(project: str) -> None:
    async with AsyncRedisQueue(**_options(project)) as queue:
        before = await _blocked_clients("blpop")
        stop = asyncio.Event()
        waiting = asyncio.create_task(queue.dequeue_many(limit=5, timeout=30, stop=stop))
        await asyncio.sleep(0.2)

        stop.set()
        assert await asyncio.wait_for(waiting, 5) == []
        await asyncio.sleep(0.1)
        assert await _blocked_clients("blpop") == before

        # the queue still works after the interrupted wait
        task_id = await queue.enqueue(DOUBLE)
        task = await queue.dequeue(timeout=5)
        assert task is not None
        assert task.id == task_id


async def test_result_wait_is_woken_by_a_write_from_another_storage(project: str) -> None:
    async with (
        AsyncRedisResultStorage(**_options(project)) as reader,
        AsyncRedisResultStorage(**_options(project)) as writer,
    ):
        waiting = asyncio.create_task(reader.wait("t1", timeout=30))
        await asyncio.sleep(0.2)
        await writer.set(TaskResult(task_id="t1", result="late"))

        result = await asyncio.wait_for(waiting, 10)

    assert result is not None
    assert result.result == "late"


async def test_many_concurrent_result_waits_all_return(project: str) -> None:
    async with (
        AsyncRedisResultStorage(**_options(project)) as reader,
        AsyncRedisResultStorage(**_options(project)) as writer,
    ):
        ids = [f"t{i}" for i in range(500)]
        await writer.set_many([TaskResult(task_id=i, result=i) for i in ids[:100]])
        waits = asyncio.gather(*(reader.wait(i, timeout=30) for i in ids))
        await asyncio.sleep(0.1)
        await writer.set_many([TaskResult(task_id=i, result=i) for i in ids[100:]])

        results = await asyncio.wait_for(waits, 20)

    assert [r.result if r else None for r in results] == ids


async def test_result_storage_leaves_its_subscription_once_nobody_waits(
    project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from omniq.storage.redis import results as results_module

    monkeypatch.setattr(results_module, "_IDLE_UNSUBSCRIBE", 0.2)
    async with (
        AsyncRedisResultStorage(**_options(project)) as reader,
        AsyncRedisResultStorage(**_options(project)) as writer,
    ):
        assert await reader.wait("t1", timeout=0.1) is None
        subscribed = reader._waiters._reader
        assert subscribed is not None
        await asyncio.wait_for(asyncio.shield(subscribed), 5)

        # the next wait subscribes again and is woken as before
        waiting = asyncio.create_task(reader.wait("t1", timeout=30))
        await asyncio.sleep(0.2)
        await writer.set(TaskResult(task_id="t1", result="again"))
        result = await asyncio.wait_for(waiting, 10)

    assert result is not None
    assert result.result == "again"


# -- many processes, dying workers ----------------------------------------------------------------
_client: Any = None


async def record_execution(counter: str, task_no: int) -> int:
    """Counts executions per task in a Redis hash, so the test sees any duplicate."""
    global _client
    if _client is None:
        host, port = service_address("redis")
        _client = aioredis.Redis(host=host, port=port)
    await _client.hincrby(counter, str(task_no), 1)
    return task_no


def _run_worker(options: dict[str, Any], stop: Any) -> None:
    async def main() -> None:
        queue = AsyncRedisQueue(**options)
        results = AsyncRedisResultStorage(**options)
        # this module's functions: stored by the parent, so this process was told about them
        worker = AsyncWorker(
            queue, results, concurrency=50, idle_timeout=0.5, task_modules=[__name__]
        )
        await worker.start()
        # a multiprocessing event cannot be awaited: its wait runs in a thread
        await asyncio.to_thread(stop.wait)
        await worker.stop()
        await queue.close()
        await results.close()

    asyncio.run(main())


@pytest.fixture
def spawn() -> multiprocessing.context.SpawnContext:
    return multiprocessing.get_context("spawn")


@pytest.mark.timeout(180)
async def test_four_worker_processes_run_every_task_exactly_once(
    project: str, spawn: multiprocessing.context.SpawnContext
) -> None:
    options = _options(project, secret_key="test-key")
    counter = f"omniq-test:{{{project}}}:executions"
    total = 10_000  # issue 6: four worker processes, 10,000 tasks
    async with AsyncRedisQueue(**options) as queue:
        await queue.enqueue_many([Task(func=TASK, args=(counter, n)) for n in range(total)])
        stop = spawn.Event()
        workers = [spawn.Process(target=_run_worker, args=(options, stop)) for _ in range(4)]
        for process in workers:
            process.start()
        try:
            deadline = asyncio.get_running_loop().time() + 150
            while (await queue.stats()).get("default", {}).get("success", 0) < total:
                assert asyncio.get_running_loop().time() < deadline, await queue.stats()
                assert all(p.is_alive() for p in workers), "a worker process died"
                await asyncio.sleep(0.2)
        finally:
            stop.set()
            for process in workers:
                process.join(30)
                if process.is_alive():
                    process.kill()

        assert await queue.stats() == {"default": {"success": total}}

    client = _client_for_checks()
    try:
        counts = await client.hgetall(counter)
    finally:
        await client.aclose()
    assert len(counts) == total
    assert {int(v) for v in counts.values()} == {1}


async def test_tasks_of_a_worker_that_died_are_finished_after_its_lease(project: str) -> None:
    options = _options(project)
    async with (
        AsyncRedisQueue(**options) as queue,
        AsyncRedisResultStorage(**options) as results,
    ):
        ids = await queue.enqueue_many(
            [Task(func=DOUBLE, args=(n,), max_retries=1) for n in range(20)]
        )
        # a worker claims them and dies without a word: its claims are only covered by the lease
        lost = await queue.dequeue_many(limit=20, worker_id="dead-worker", lease=0.5)
        assert len(lost) == 20

        # the tasks were stored as a broker-writer stores them (no enqueue of this process):
        # the worker is told about this module
        worker = AsyncWorker(queue, results, recover_interval=0.2, lease=5, task_modules=[__name__])
        async with worker:
            done = await asyncio.wait_for(
                asyncio.gather(*(results.wait(i, timeout=30) for i in ids)), 30
            )

        assert [r.result if r else None for r in done] == [2 * n for n in range(20)]
        for task_id in ids:
            task = await queue.get_task(task_id)
            assert task is not None
            assert task.status is TaskStatus.SUCCESS
            assert task.attempts == 2
            assert task.worker_id != "dead-worker"


def double(n: int) -> int:
    return 2 * n


# -- the server going away -----------------------------------------------------------------------


def _restart_redis() -> None:
    """Stops and starts the local server the way .ci/run starts it (it keeps nothing on disk)."""
    import subprocess
    import time

    subprocess.run(["redis-cli", "-p", "6379", "shutdown", "nosave"], capture_output=True)
    time.sleep(0.5)
    subprocess.run(
        [
            "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "-::1",
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            "/var/lib/redis",
            "--logfile",
            "/var/log/redis/ci.log",
        ],
        check=True,
        capture_output=True,
    )
    for _ in range(100):
        if (
            subprocess.run(["redis-cli", "-p", "6379", "ping"], capture_output=True).stdout.strip()
            == b"PONG"
        ):
            return
        time.sleep(0.05)
    raise RuntimeError("redis did not come back")


@pytest.mark.skipif(
    service_address("redis") != ("127.0.0.1", 6379)
    or not __import__("shutil").which("redis-server"),
    reason="restarting the server needs the local redis-server on its default port",
)
async def test_server_restart_mid_run_does_not_crash_a_worker(project: str) -> None:
    """The server restarts (and, configured without persistence, forgets everything): the worker
    lives through it and serves tasks enqueued once the server is back."""
    from omniq import AsyncOmniQ
    from tests import tasks_fixture as tf

    backend = create_backend(url="redis://127.0.0.1:6379/9", project_name=project)
    async with AsyncOmniQ.from_backend(backend) as oq:
        await oq.start_worker(concurrency=10)
        before = await oq.enqueue(tf.add, args=(1, 1))
        assert await oq.get_result(before, timeout=10) == 2
        await asyncio.to_thread(_restart_redis)
        after = None
        for _ in range(100):
            try:
                after = await oq.enqueue(tf.add, args=(20, 22))
                break
            except Exception:  # the first command may meet a dropped connection
                await asyncio.sleep(0.1)
        assert after is not None
        assert await oq.get_result(after, timeout=30) == 42
        assert oq.worker is not None
        assert oq.worker.is_running


# -- limits ----------------------------------------------------------------------------------------
async def test_limit_records_expire_on_the_server_when_they_hold_nothing(project: str) -> None:
    """Between two sweeps (or with no worker left to sweep) a bucket's hash and a key's slot
    set expire on their own: the bucket when it is full again, the set with its last holder."""
    from omniq.models.limits import parse_rate_limit

    queue = AsyncRedisQueue(**_options(project))
    check = _client_for_checks()
    try:
        assert await queue.take_token("task:a", parse_rate_limit("1/m")) == 0.0
        assert await queue.acquire_slot("user:1", "h1", 2, 30) is True
        assert await queue.acquire_slot("user:1", "h2", 2, 5) is True
        base = queue._base
        assert 59_000 < await check.pttl(f"{base}:rl:task:a") <= 60_001
        assert 29_000 < await check.pttl(f"{base}:slots:user:1") <= 30_001  # its last holder
        # a key whose last slot is released is due for the next sweep at once, not in 30 s
        await queue.release_slot("user:1", "h1")
        await queue.release_slot("user:1", "h2")
        assert await check.exists(f"{base}:slots:user:1") == 0
        assert await queue.sweep_limits() == 1
        assert await check.hlen(f"{base}:limits:slots") == 0
        assert await check.zcard(f"{base}:limits:sdue") == 0
        assert await check.zcard(f"{base}:limits:bdue") == 1  # the bucket is not full yet
    finally:
        await queue.close()
        await check.aclose()
