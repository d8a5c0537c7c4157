"""Redis: an idle claimer's wake-up brings the claim with it (``omniq.storage.redis._wake``).

The claim script is pipelined behind the BLPOP, so it runs when the wake-up comes, not when it
was sent: these tests check that it claims in that one round trip, with "now" and the lease
taken at that moment, that delayed tasks coming due are claimed by it, and that a stop while
waiting loses neither a claim nor a wake-up another claimer needs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

aioredis = pytest.importorskip("redis.asyncio")

from omniq._time import utcnow  # noqa: E402
from omniq.models.task import Task, TaskStatus  # noqa: E402
from omniq.storage.redis import AsyncRedisQueue  # noqa: E402
from tests.conftest import service_address  # noqa: E402

pytestmark = pytest.mark.services("redis")

DOUBLE = "tests.backends.test_redis:double"
#: how far the claim's "now" (the server's clock moved onto the client's by a measured offset)
#: may be from the client's own: half the shortest of a few round trips, under a loaded machine
_CLOCK_SLACK = timedelta(milliseconds=20)


@pytest.fixture
async def project() -> AsyncIterator[str]:
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    host, port = service_address("redis")
    client = aioredis.Redis(host=host, port=port)
    try:
        keys = [k async for k in client.scan_iter(match=f"*{{{name}}}*", count=10_000)]
        if keys:
            await client.unlink(*keys)
    finally:
        await client.aclose()


def _options(project: str, **extra: Any) -> dict[str, Any]:
    host, port = service_address("redis")
    return {"host": host, "port": port, "project_name": project, **extra}


class _CountClaims:
    """Counts the claims sent on their own (``_claim``), as opposed to with a wake-up."""

    def __init__(self, queue: AsyncRedisQueue) -> None:
        self.calls = 0
        real = queue._claim

        async def counted(*args: Any) -> tuple[list[Task], list[Task]]:
            self.calls += 1
            return await real(*args)

        queue._claim = counted  # type: ignore[method-assign]


async def test_the_wake_up_brings_the_claim_with_now_and_lease_of_that_moment(
    project: str,
) -> None:
    async with AsyncRedisQueue(**_options(project)) as queue:
        counter = _CountClaims(queue)
        waiting = asyncio.create_task(queue.dequeue_many(limit=3, timeout=30, lease=60))
        await asyncio.sleep(0.5)  # the claim behind the BLPOP was sent half a second ago
        assert counter.calls == 1  # the empty claim before the wait
        enqueued = utcnow()
        task_id = await queue.enqueue(DOUBLE, args=(2,))
        tasks = await asyncio.wait_for(waiting, 10)
        claimed = utcnow()

    assert [t.id for t in tasks] == [task_id]
    assert counter.calls == 1  # no second claim after the wake-up
    task = tasks[0]
    assert task.status is TaskStatus.RUNNING
    assert task.claim
    # the server's clock at the wake-up, not the moment the claim was sent
    assert task.started_at is not None
    assert enqueued - _CLOCK_SLACK <= task.started_at <= claimed + _CLOCK_SLACK
    assert task.lease_expires_at is not None
    assert task.lease_expires_at - task.started_at == timedelta(seconds=60)


async def test_a_delayed_task_coming_due_is_claimed_by_the_claim_behind_the_wait(
    project: str,
) -> None:
    async with AsyncRedisQueue(**_options(project)) as queue:
        task_id = await queue.enqueue(DOUBLE, args=(1,), run_in=0.6)
        counter = _CountClaims(queue)
        tasks = await asyncio.wait_for(queue.dequeue_many(limit=2, timeout=10), 10)
        got = utcnow()
        stored = await queue.get_task(task_id)

    assert [t.id for t in tasks] == [task_id]
    assert counter.calls == 1
    assert stored is not None
    assert stored.eta is not None
    assert stored.started_at is not None
    # "now" is the server's clock moved onto this one's: off by at most half a TIME round trip
    assert stored.eta <= stored.started_at <= got + _CLOCK_SLACK
    assert got - stored.eta < timedelta(seconds=0.5)


async def test_a_stop_while_waiting_ends_the_wait_and_nothing_is_claimed(project: str) -> None:
    async with AsyncRedisQueue(**_options(project)) as queue:
        stop = asyncio.Event()
        waiting = asyncio.create_task(queue.dequeue_many(limit=5, timeout=30, stop=stop))
        await asyncio.sleep(0.2)
        stop.set()
        assert await asyncio.wait_for(waiting, 5) == []
        # no stop list is left behind, and the next claim finds a task enqueued now at once
        host, port = service_address("redis")
        client = aioredis.Redis(host=host, port=port)
        try:
            assert [k async for k in client.scan_iter(match=f"*{{{project}}}*:wakestop:*")] == []
        finally:
            await client.aclose()
        task_id = await queue.enqueue(DOUBLE, args=(3,))
        again = await queue.dequeue_many(limit=5, timeout=5)
        assert [t.id for t in again] == [task_id]


@pytest.mark.parametrize("round_", range(5))
async def test_a_stop_racing_a_wake_up_loses_neither_the_task_nor_the_wake_up(
    project: str, round_: int
) -> None:
    """One claimer is stopped as a task arrives, another waits beside it: the task is either
    returned by the stopped one (its claim came with the wake-up) or claimed by the other at
    once (the stopped claim passed the wake-up on), never left to the idle re-check."""
    async with (
        AsyncRedisQueue(**_options(project)) as first,
        AsyncRedisQueue(**_options(project)) as second,
    ):
        stop = asyncio.Event()
        stopped = asyncio.create_task(first.dequeue_many(limit=1, timeout=30, stop=stop))
        await asyncio.sleep(0.2)  # the first claimer is blocked before the second
        other = asyncio.create_task(second.dequeue_many(limit=1, timeout=30))
        await asyncio.sleep(0.2)
        task_id = await first.enqueue(DOUBLE, args=(round_,))
        if round_ % 2:
            await asyncio.sleep(0.001 * round_)
        stop.set()
        from_stopped = await asyncio.wait_for(stopped, 5)
        if from_stopped:
            other.cancel()
            await asyncio.gather(other, return_exceptions=True)
            claimed = from_stopped
        else:
            claimed = await asyncio.wait_for(other, 2)
        assert [t.id for t in claimed] == [task_id]
        assert await first.dequeue_many(limit=1, timeout=None) == []
