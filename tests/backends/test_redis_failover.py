"""Redis high availability under faults, on private topologies the tests start themselves
(tests/backends/redis_servers.py): kill -9 of the Cluster master serving the project's slot
mid-drain, ``SENTINEL FAILOVER`` mid-drain with a producer running (``wait_replicas=1``),
SIGSTOP of the Sentinel-managed master with busy and with idle workers, and kill -9 of it (its
waiting clients keep waiting for the new master). The scenario and its criteria are those of
``python -m reliability redis-ha`` (reliability/redis_ha.py), at CI size: nothing lost, no
acknowledged enqueue missing, work resumed within 10 s of the promotion with no restart, every
waiting get_result answered, duplicates only of tasks running at the fault."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("redis.asyncio")

from reliability import redis_ha
from reliability.harness import ROOT

from omniq import AsyncOmniQ, BackendUnavailable
from omniq.backend import create_backend
from omniq.models.result import TaskResult
from omniq.storage.redis import AsyncRedisResultStorage
from tests import tasks_fixture as tf
from tests.backends.redis_servers import HOST, Servers, free_port, require_redis_server
from tests.faults.conftest import assert_passed

SHORT = redis_ha.HAOptions(tasks=600, waiters=100, concurrency=20, work_ms=5, deadline=60)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "fault",
    [
        "cluster-kill",
        "cluster-kill-wait",
        "cluster-sigstop-busy",
        "cluster-sigstop-idle",
        "sentinel-failover",
        "sentinel-sigstop-busy",
        "sentinel-sigstop-idle",
        "sentinel-kill",
    ],
)
async def test_a_redis_failover_loses_nothing_and_work_resumes_by_itself(fault: str) -> None:
    require_redis_server()
    assert_passed(await redis_ha.run(fault, SHORT))


# -- a lone server that goes away ------------------------------------------------------------------
@pytest.fixture
def lone_server() -> Iterator[tuple[Servers, int]]:
    """A private redis-server with a password, which the test kills and restarts."""
    require_redis_server()
    servers = Servers()
    port = free_port()
    servers.start(port, "--requirepass", _PASSWORD, password=_PASSWORD)
    try:
        yield servers, port
    finally:
        servers.stop()


_PASSWORD = "lone-secret"


async def test_a_waiting_get_result_waits_across_a_server_restart(
    lone_server: tuple[Servers, int],
) -> None:
    servers, port = lone_server
    url = f"redis://:{_PASSWORD}@{HOST}:{port}/0"
    waiter_store = AsyncRedisResultStorage(url=url, project_name="restart")
    writer_store = AsyncRedisResultStorage(url=url, project_name="restart")
    async with waiter_store, writer_store:
        waiting = asyncio.create_task(waiter_store.wait("t-1", timeout=None))
        await asyncio.sleep(0.3)  # subscribed and waiting
        servers.kill(port)
        await asyncio.sleep(1.0)  # before: ConnectionError within 0.1 s
        assert not waiting.done()
        servers.start(port, "--requirepass", _PASSWORD, password=_PASSWORD)
        await writer_store.set(TaskResult(task_id="t-1", result=42))

        result = await asyncio.wait_for(waiting, 30)

        assert result is not None
        assert result.result == 42


async def test_a_wait_whose_timeout_ends_while_the_server_is_down_names_the_server_only(
    lone_server: tuple[Servers, int],
) -> None:
    servers, port = lone_server
    url = f"redis://:{_PASSWORD}@{HOST}:{port}/0"
    async with AsyncRedisResultStorage(url=url, project_name="gone") as store:
        servers.kill(port)

        with pytest.raises(BackendUnavailable) as raised:
            await store.wait("t-1", timeout=1.5)

        message = str(raised.value)
        assert f"{HOST}:{port}" in message
        assert "t-1" in message
        assert _PASSWORD not in message


async def _until_running(url: str, project: str, task_id: str) -> None:
    async with AsyncOmniQ.from_backend(create_backend(url=url, project_name=project)) as oq:
        deadline = time.monotonic() + 30
        while (task := await oq.get_task(task_id)) is None or task.status != "running":
            assert time.monotonic() < deadline, "the worker never started the task"
            await asyncio.sleep(0.05)


@pytest.mark.timeout(120)
def test_a_second_sigterm_stops_a_worker_whose_backend_is_gone(
    lone_server: tuple[Servers, int], tmp_path: Path
) -> None:
    """The first SIGTERM starts the graceful stop, whose acknowledgement of the finished task
    retries while Redis is down; the second one stops the worker within seconds (before, the
    flush retried forever and the worker ignored every further signal)."""
    servers, port = lone_server
    url = f"redis://:{_PASSWORD}@{HOST}:{port}/0"
    project = f"sigterm-{uuid.uuid4().hex[:8]}"

    async def enqueue() -> str:
        async with AsyncOmniQ.from_backend(create_backend(url=url, project_name=project)) as oq:
            return await oq.enqueue(tf.async_sleep, args=(1.0,))

    task_id = asyncio.run(enqueue())
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    include = ("--include", "tests.tasks_fixture")  # workers run only what they are told
    log = tmp_path / "worker.log"
    with open(log, "w") as out:  # a file, not a pipe: a full pipe would block the worker
        worker = subprocess.Popen(
            [sys.executable, "-m", "omniq", "worker", "--url", url, "--project", project, *include],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    try:
        deadline = time.monotonic() + 60
        while "omniq worker" not in log.read_text():  # the banner: serving
            assert worker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "no banner"
            time.sleep(0.05)
        asyncio.run(_until_running(url, project, task_id))
        servers.kill(port)
        time.sleep(2.0)  # it finished; its acknowledgement fails
        worker.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert worker.poll() is None, "the graceful stop waits for the acknowledgement"
        worker.send_signal(signal.SIGTERM)

        code = worker.wait(timeout=60)

        assert code == 128 + signal.SIGTERM
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert task_id


async def test_a_wait_on_a_storage_closed_meanwhile_ends_instead_of_retrying(
    lone_server: tuple[Servers, int],
) -> None:
    """Waits retry what a failover breaks, not OmniQ's own 'not connected' verdict."""
    _, port = lone_server
    store = AsyncRedisResultStorage(url=f"redis://:{_PASSWORD}@{HOST}:{port}/0", project_name="c")
    await store.connect()
    waiting = asyncio.create_task(store.wait("t-1", timeout=None))
    await asyncio.sleep(0.3)
    await store.close()

    with pytest.raises(BackendUnavailable, match="not connected"):
        await asyncio.wait_for(waiting, 10)
