"""Task TTL: a task not started before ``expires_at`` is never run; it ends EXPIRED."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from omniq._time import utcnow
from omniq.models.result import ResultStatus
from omniq.models.task import TaskStatus
from omniq.storage.base import BaseResultStorage, BaseTaskQueue

from .helpers import FUNC, claim

TTL = 0.1
PAST_TTL = 0.2


async def test_task_expiring_before_any_claim_is_never_dequeued(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC, ttl=TTL)
    await asyncio.sleep(PAST_TTL)

    assert await queue.dequeue() is None


async def test_task_expiring_before_any_claim_ends_expired(queue: BaseTaskQueue) -> None:
    task_id = await queue.enqueue(FUNC, ttl=TTL)
    await asyncio.sleep(PAST_TTL)
    await queue.dequeue()

    stored = await queue.get_task(task_id)
    assert stored is not None
    assert stored.status is TaskStatus.EXPIRED


async def test_expired_task_does_not_hide_the_next_task(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC, ttl=TTL, priority=10)
    fresh = await queue.enqueue(FUNC)
    await asyncio.sleep(PAST_TTL)

    assert (await claim(queue)).id == fresh


async def test_task_with_expires_at_in_the_future_is_claimed(queue: BaseTaskQueue) -> None:
    task_id = await queue.enqueue(FUNC, expires_at=utcnow() + timedelta(seconds=60))

    assert (await claim(queue)).id == task_id


async def test_cleanup_marks_expired_tasks_and_returns_the_count(queue: BaseTaskQueue) -> None:
    doomed = [await queue.enqueue(FUNC, ttl=TTL) for _ in range(2)]
    alive = await queue.enqueue(FUNC, ttl=60)
    await asyncio.sleep(PAST_TTL)

    assert await queue.cleanup() == {"expired_tasks": 2}

    for task_id in doomed:
        stored = await queue.get_task(task_id)
        assert stored is not None
        assert stored.status is TaskStatus.EXPIRED
    kept = await queue.get_task(alive)
    assert kept is not None
    assert kept.status is TaskStatus.PENDING


async def test_cleanup_counts_each_expired_task_once(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC, ttl=TTL)
    await asyncio.sleep(PAST_TTL)

    assert await queue.cleanup() == {"expired_tasks": 1}
    assert await queue.cleanup() == {"expired_tasks": 0}


async def test_expiry_writes_an_expired_result(
    queue: BaseTaskQueue, results: BaseResultStorage
) -> None:
    queue.wire(result_storage=results)
    task_id = await queue.enqueue(FUNC, ttl=TTL)
    await asyncio.sleep(PAST_TTL)

    await queue.cleanup()

    result = await results.get(task_id)
    assert result is not None
    assert result.status is ResultStatus.EXPIRED
