"""The Redis backend behind Redis Sentinel: a master, a replica and three sentinels that the
tests start themselves (tests/backends/redis_servers.py). The whole conformance suite runs on
the shared set-up too (``-k redis-sentinel``); the failover test starts its own, since it
kills the master."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

pytest.importorskip("redis.asyncio")

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError

from omniq import AsyncOmniQ, BackendUnavailable, ConfigError
from omniq.backend import create_backend
from omniq.models.config import RedisConfig
from omniq.storage.redis import AsyncRedisQueue
from tests import tasks_fixture as tf
from tests.backends.redis_servers import SentinelSetup, shared_sentinel, start_sentinel
from tests.conftest import service_address


def _url(setup: SentinelSetup, database: int = 0) -> str:
    return f"redis+sentinel://{','.join(setup.sentinels)}/{setup.master_name}/{database}"


@pytest.fixture
def project() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def sentinel() -> SentinelSetup:
    return shared_sentinel()


@pytest.fixture
async def shared_project(sentinel: SentinelSetup, project: str) -> AsyncIterator[str]:
    """A project on the shared set-up; its keys are unlinked afterwards."""
    yield project
    async with AsyncRedisQueue(url=_url(sentinel), project_name=project) as queue:
        keys = [k async for k in queue.redis.scan_iter(match=f"*{{{project}}}*", count=10_000)]
        if keys:
            await queue.redis.unlink(*keys)


async def test_a_sentinel_url_serves_tasks_end_to_end_with_a_worker(
    sentinel: SentinelSetup, shared_project: str
) -> None:
    backend = create_backend(url=_url(sentinel), project_name=shared_project)
    async with AsyncOmniQ.from_backend(backend) as oq:
        await oq.start_worker(concurrency=10)
        ids = [await oq.enqueue(tf.add, args=(n, 1)) for n in range(20)]

        results = await asyncio.gather(*(oq.get_result(i, timeout=30) for i in ids))

        assert results == [n + 1 for n in range(20)]
        health = await oq.task_queue.health_check()
        assert health["status"] == "healthy"
        assert health["topology"] == "sentinel"


async def test_script_calls_on_a_sentinel_master_keep_no_connection_past_the_failover_gate(
    sentinel: SentinelSetup, shared_project: str
) -> None:
    """A script call on a connection kept aside (the Lane) never passes the Sentinel pool's
    get_connection, where writes are held during a failover: with it, a planned failover lost
    33-38 acknowledged enqueues to the demoted master in 3 of 3 full runs. So a Sentinel
    client has no lane; a single server's has."""
    from redis.asyncio.sentinel import SentinelConnectionPool

    from omniq.storage.redis._scripts import _LANES

    async with AsyncRedisQueue(url=_url(sentinel), project_name=shared_project) as queue:
        await queue.enqueue(tf.add, args=(1, 2))
        assert isinstance(queue.redis.connection_pool, SentinelConnectionPool)
        assert queue.redis not in _LANES
    host, port = service_address("redis")
    async with AsyncRedisQueue(host=host, port=port, project_name=shared_project) as single:
        await single.enqueue(tf.add, args=(1, 2))
        assert single.redis in _LANES


async def test_sentinel_options_reach_the_master_and_not_the_replica(
    sentinel: SentinelSetup,
) -> None:
    config = RedisConfig(sentinels=sentinel.sentinels, sentinel_master=sentinel.master_name)
    async with AsyncRedisQueue.from_config(config) as queue:
        info = await queue.redis.info("replication")
        assert info["role"] == "master"
        assert info["connected_slaves"] == 1


async def test_an_unknown_master_name_is_reported_as_unavailable(
    sentinel: SentinelSetup,
) -> None:
    queue = AsyncRedisQueue(sentinels=sentinel.sentinels, sentinel_master="no-such-master")

    health = await queue.health_check()

    assert health["status"] == "unhealthy"
    assert "no-such-master" in health["error"]


# -- passwords ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def protected_sentinel() -> Iterator[SentinelSetup]:
    """A set-up whose master and replica ask for one password and the sentinels for another."""
    setup = start_sentinel(password="master-pw", sentinel_password="sentinel-pw")
    try:
        yield setup
    finally:
        setup.servers.stop()


async def test_the_master_password_and_the_sentinel_password_each_reach_their_server(
    protected_sentinel: SentinelSetup, project: str
) -> None:
    setup = protected_sentinel
    host, port = setup.sentinels[0].split(":")
    unauthenticated = aioredis.Redis(host=host, port=int(port), retry=Retry(NoBackoff(), 0))
    try:
        with pytest.raises(AuthenticationError):  # the sentinels do ask for their password
            await unauthenticated.execute_command("SENTINEL", "MASTERS")
    finally:
        await unauthenticated.aclose()
    config = RedisConfig(
        sentinels=setup.sentinels,
        sentinel_master=setup.master_name,
        password="master-pw",
        sentinel_password="sentinel-pw",
    )
    async with AsyncRedisQueue.from_config(config) as queue:
        task_id = await queue.enqueue(tf.add, args=(1, 2))
        task = await queue.dequeue()
        assert task is not None
        assert task.id == task_id
    url = (
        f"redis+sentinel://:master-pw@{','.join(setup.sentinels)}/{setup.master_name}/0"
        "?sentinel_password=sentinel-pw"
    )
    async with AsyncRedisQueue(url=url, project_name=project) as queue:
        assert await queue.get_task(task_id) is None  # another project, same server
        assert (await queue.health_check())["status"] == "healthy"


async def test_a_wrong_master_password_is_reported_as_unavailable_without_showing_it(
    protected_sentinel: SentinelSetup,
) -> None:
    queue = AsyncRedisQueue(
        sentinels=protected_sentinel.sentinels,
        sentinel_master=protected_sentinel.master_name,
        password="not-the-master-pw",
        sentinel_password="sentinel-pw",
    )

    health = await queue.health_check()

    assert health["status"] == "unhealthy"
    assert "not-the-master-pw" not in health["error"]
    assert "sentinel-pw" not in health["error"]


async def test_a_wrong_sentinel_password_is_reported_at_once_in_one_short_line(
    protected_sentinel: SentinelSetup,
) -> None:
    """Before: 48-90 s of redis-py retries, then a multi-KB dump of connection objects."""
    queue = AsyncRedisQueue(
        sentinels=protected_sentinel.sentinels,
        sentinel_master=protected_sentinel.master_name,
        password="master-pw",
        sentinel_password="not-the-sentinel-pw",
    )
    started = time.monotonic()

    with pytest.raises(BackendUnavailable) as raised:
        await queue.connect()

    assert time.monotonic() - started < 5  # a bound on a hang, not a speed figure
    message = str(raised.value)
    assert "AuthenticationError" in message
    assert all(s in message for s in protected_sentinel.sentinels)
    assert "\n" not in message
    assert len(message) < 1000
    assert "not-the-sentinel-pw" not in message
    assert "master-pw" not in message


# -- wait_replicas --------------------------------------------------------------------------------
async def test_with_wait_replicas_an_acknowledged_enqueue_is_already_on_the_replica(
    sentinel: SentinelSetup, shared_project: str
) -> None:
    backend = create_backend(url=_url(sentinel), project_name=shared_project, wait_replicas=1)
    replica = aioredis.Redis(host="127.0.0.1", port=sentinel.replica_port)
    try:
        async with AsyncOmniQ.from_backend(backend) as oq:
            task_id = await oq.enqueue(tf.add, args=(2, 3))
            keys = [k async for k in replica.scan_iter(match=f"*{{{shared_project}}}*{task_id}*")]
            assert keys, "the enqueue returned before the replica had the task"

            await oq.start_worker(concurrency=2)
            assert await oq.get_result(task_id, timeout=30) == 5
    finally:
        await replica.aclose()


async def test_wait_replicas_beyond_the_replicas_there_are_fails_the_enqueue_clearly(
    sentinel: SentinelSetup, shared_project: str
) -> None:
    queue = AsyncRedisQueue(
        url=_url(sentinel), project_name=shared_project, wait_replicas=2, socket_timeout=1.5
    )
    async with queue:
        with pytest.raises(BackendUnavailable, match="only 1 of wait_replicas=2 replicas"):
            await queue.enqueue(tf.add, args=(1, 1))


def test_wait_replicas_is_read_from_a_url_and_taken_out_of_it() -> None:
    single = AsyncRedisQueue(url="redis://localhost:6379/0?wait_replicas=2")
    assert single._conn.wait_replicas == 2
    assert "wait_replicas" not in single._conn.describe()
    sentinel = AsyncRedisQueue(url="redis+sentinel://h1:26379,h2/m/0?wait_replicas=1")
    assert sentinel._conn.wait_replicas == 1
    with pytest.raises(ConfigError, match="wait_replicas must be a number, got 'x'"):
        AsyncRedisQueue(url="redis://localhost/0?wait_replicas=x")


@pytest.mark.parametrize("value", [-1, 1.5, True, "1"])
def test_wait_replicas_must_be_a_count(value: object) -> None:
    with pytest.raises(ConfigError, match="wait_replicas"):
        AsyncRedisQueue(host="localhost", wait_replicas=value)


# -- failover -------------------------------------------------------------------------------------
@pytest.fixture
def private_sentinel() -> Iterator[SentinelSetup]:
    setup = start_sentinel(ready_to_fail_over=True)
    try:
        yield setup
    finally:
        setup.servers.stop()


async def _retrying(make: object, deadline: float) -> object:
    """``await make()`` until it succeeds: right after a failover, the first commands may meet
    a connection to the old master that is gone."""
    while True:
        try:
            assert callable(make)
            return await make()
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


@pytest.mark.timeout(120)
async def test_the_worker_carries_on_after_sentinel_fails_the_master_over(
    private_sentinel: SentinelSetup, project: str
) -> None:
    setup = private_sentinel
    backend = create_backend(url=_url(setup), project_name=project)
    async with AsyncOmniQ.from_backend(backend) as oq:
        await oq.start_worker(concurrency=10)
        before = [await oq.enqueue(tf.add, args=(n, 1)) for n in range(10)]
        assert await asyncio.gather(*(oq.get_result(i, timeout=30) for i in before)) == [
            n + 1 for n in range(10)
        ]

        old_master = setup.master_port
        setup.servers.kill(old_master)
        deadline = time.monotonic() + 60
        while setup.current_master_port() in (old_master, None):
            assert time.monotonic() < deadline, "the sentinels did not fail over"
            await asyncio.sleep(0.2)
        assert setup.current_master_port() == setup.replica_port

        after = []
        for n in range(10):

            async def enqueue(n: int = n) -> str:
                return await oq.enqueue(tf.add, args=(n, 100))

            after.append(await _retrying(enqueue, time.monotonic() + 30))
        results = await asyncio.gather(*(oq.get_result(str(i), timeout=30) for i in after))

        assert results == [n + 100 for n in range(10)]
        assert oq.worker is not None
        assert oq.worker.is_running
        info = await oq.task_queue.health_check()
        assert info["status"] == "healthy"
