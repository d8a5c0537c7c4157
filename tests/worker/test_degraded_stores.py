"""A worker whose result store goes away keeps finished tasks in a bounded buffer, stops claiming
when it is full, and writes them when the store is back; an event store that is away never
touches a task. Real servers: the queue on the shared Redis, the result store on a private one
stopped and started again, the event store on a port where nothing listens."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import pytest
from reliability.harness import unlink_project
from reliability.servers import PrivateRedis, free_port

from omniq import AsyncWorker, BackendUnavailable
from omniq.models.result import ResultStatus
from omniq.storage.redis.events import AsyncRedisEventStorage
from omniq.storage.redis.queue import AsyncRedisQueue
from omniq.storage.redis.results import AsyncRedisResultStorage
from tests.backends.redis_servers import require_redis_server
from tests.conftest import service_address


async def _until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")


@pytest.mark.services("redis")
@pytest.mark.timeout(90)
async def test_results_wait_in_a_bounded_buffer_while_their_store_is_away(
    caplog: pytest.LogCaptureFixture,
) -> None:
    require_redis_server()
    host, port = service_address("redis")
    project = f"degraded-{uuid.uuid4().hex[:8]}"
    server = PrivateRedis()
    await asyncio.to_thread(server.start)
    queue = AsyncRedisQueue(url=f"redis://{host}:{port}/0", project_name=project)
    results = AsyncRedisResultStorage(
        url=f"redis://127.0.0.1:{server.port}/0", project_name=project
    )
    events = AsyncRedisEventStorage(url=f"redis://127.0.0.1:{free_port()}/0", project_name=project)
    buffer, concurrency = 6, 4
    worker = AsyncWorker(
        queue,
        results,
        events,
        concurrency=concurrency,
        result_buffer=buffer,
        scheduler=False,
        task_modules=["tests.tasks_fixture"],
    )
    try:
        caplog.set_level(logging.INFO, logger="omniq")
        await worker.start()  # the event store is away from the start: no matter
        first = [await queue.enqueue("tests.tasks_fixture:add", args=(i, 1)) for i in range(5)]
        for i, task_id in enumerate(first):
            assert (await results.wait(task_id, timeout=10)).result == i + 1  # type: ignore[union-attr]

        await asyncio.to_thread(server.stop, True)  # SHUTDOWN SAVE: the results so far stay
        # a task that fails for good while the result store is away: its error result and its
        # DEAD mark wait too, under a renewed claim, instead of the task running again later
        poison = await queue.enqueue("tests.tasks_fixture:boom", args=("away",), max_retries=0)
        ids = [await queue.enqueue("tests.tasks_fixture:add", args=(i, 100)) for i in range(40)]

        async def buffer_full() -> bool:
            return worker._buffer_full

        await _until(buffer_full, 20, "the result buffer filled up")
        await asyncio.sleep(1.0)  # time to claim more, were it claiming
        counts = (await queue.stats())["default"]
        assert counts.get("success", 0) == 5  # nothing acknowledged without its result
        assert counts.get("dead", 0) == 0
        assert counts.get("pending", 0) >= 40 - buffer - concurrency
        assert len(worker._completions) <= buffer + concurrency
        assert worker.breaker_state()["results"]["state"] in ("open", "half_open")
        full = [r for r in caplog.records if "result buffer full" in r.getMessage()]
        assert len(full) == 1

        await asyncio.to_thread(server.start)

        async def all_written() -> bool:
            try:  # the worker's own result store: it fails fast until its breaker closes
                found = await results.get_many(ids)
            except BackendUnavailable:
                return False
            return len(found) == len(ids)

        await _until(all_written, 30, "every result written once the store was back")
        found = await results.get_many(ids)
        for i, task_id in enumerate(ids):
            assert found[task_id].status is ResultStatus.SUCCESS
            assert found[task_id].result == i + 100
        dead = await results.wait(poison, timeout=10)
        assert dead is not None
        assert dead.status is ResultStatus.ERROR
        assert dead.error == "away"
        counts = (await queue.stats())["default"]
        assert counts.get("success", 0) == 45
        assert counts.get("dead", 0) == 1
        assert worker.stats.succeeded == 45  # each ran once
        assert worker.stats.failed == 1
        assert not worker._held
        assert worker.breaker_state()["results"]["state"] == "closed"
        assert any("result buffer has room again" in r.getMessage() for r in caplog.records)

        # the event store never answered: events were dropped and counted, tasks untouched
        assert worker.event_logger is not None
        assert worker.event_logger.stats.written == 0
        assert worker.event_logger.stats.dropped > 0
        assert worker.breaker_state()["events"]["state"] in ("open", "half_open")
    finally:
        if server.process is None or server.process.poll() is not None:
            await asyncio.to_thread(server.start)  # a graceful stop writes what it holds
        await worker.stop()
        for component in (queue, results, events):
            await component.close()
        await asyncio.to_thread(server.close)
        await unlink_project(host, port, project)


@pytest.mark.services("redis")
@pytest.mark.timeout(60)
async def test_a_graceful_stop_waits_for_an_away_store_a_bounded_time_and_says_so(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop used to wait without limit for a result store that never came back; now it waits
    its grace period (at least ``_FORCED_FLUSH``, shortened here) and says in one line how many
    finished tasks it leaves unacknowledged and that their leases bring them back."""
    import omniq.workers.worker as worker_module

    monkeypatch.setattr(worker_module, "_FORCED_FLUSH", 0.5)
    require_redis_server()
    host, port = service_address("redis")
    project = f"degraded-{uuid.uuid4().hex[:8]}"
    server = PrivateRedis()
    await asyncio.to_thread(server.start)
    queue = AsyncRedisQueue(url=f"redis://{host}:{port}/0", project_name=project)
    results = AsyncRedisResultStorage(
        url=f"redis://127.0.0.1:{server.port}/0", project_name=project
    )
    worker = AsyncWorker(
        queue, results, None, scheduler=False, task_modules=["tests.tasks_fixture"], lease=30
    )
    try:
        caplog.set_level(logging.INFO, logger="omniq")
        await worker.start()
        await asyncio.to_thread(server.stop, True)
        task_id = await queue.enqueue("tests.tasks_fixture:add", args=(1, 2))

        async def finished() -> bool:
            return worker.stats.succeeded == 1

        await _until(finished, 10, "the task ran")
        async with asyncio.timeout(10):  # without a bound this never returned
            await worker.stop(timeout=0)

        lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        [gave_up] = [line for line in lines if "not acknowledged" in line]
        assert "1 finished task(s) not acknowledged" in gave_up
        assert "until their lease (30s) expires, then run again" in gave_up
        task = await queue.get_task(task_id)
        assert task is not None
        assert task.status.value == "running"  # its lease brings it back, nothing is lost
    finally:
        await worker.stop(graceful=False)
        for component in (queue, results):
            await component.close()
        await asyncio.to_thread(server.close)
        await unlink_project(host, port, project)
