"""Leases: heartbeats keep a claim alive, expired leases come back, stale claims are refused."""

from __future__ import annotations

import asyncio

from omniq.models.result import ResultStatus
from omniq.models.task import Task, TaskStatus
from omniq.storage.base import BaseResultStorage, BaseTaskQueue, HeartbeatStatus

from .helpers import FUNC, claim, claim_token

LEASE = 0.2
PAST_LEASE = 0.3


async def _claim_and_lose_lease(queue: BaseTaskQueue, *, max_retries: int = 3) -> Task:
    """Claims a task as worker-1, lets the lease run out and recovers it."""
    await queue.enqueue(FUNC, max_retries=max_retries)
    task = await claim(queue, worker_id="worker-1", lease=LEASE)
    await asyncio.sleep(PAST_LEASE)
    assert await queue.recover_expired() == 1
    return task


async def test_heartbeat_of_a_valid_claim_returns_ok(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC)
    task = await claim(queue, lease=LEASE)

    assert await queue.heartbeat(task.id, claim_token(task), lease=5) is HeartbeatStatus.OK


async def test_heartbeat_extends_the_lease(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC)
    task = await claim(queue, lease=LEASE)
    assert task.lease_expires_at is not None

    await queue.heartbeat(task.id, claim_token(task), lease=5)

    stored = await queue.get_task(task.id)
    assert stored is not None
    assert stored.lease_expires_at is not None
    assert stored.lease_expires_at > task.lease_expires_at


async def test_heartbeat_keeps_the_task_from_being_recovered(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC)
    task = await claim(queue, lease=LEASE)
    await queue.heartbeat(task.id, claim_token(task), lease=5)
    await asyncio.sleep(PAST_LEASE)

    assert await queue.recover_expired() == 0
    stored = await queue.get_task(task.id)
    assert stored is not None
    assert stored.status is TaskStatus.RUNNING


async def test_heartbeat_with_a_wrong_claim_returns_lost(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC)
    task = await claim(queue, lease=5)

    assert await queue.heartbeat(task.id, "someone-else:1:0000") is HeartbeatStatus.LOST


async def test_heartbeat_of_an_unknown_task_returns_lost(queue: BaseTaskQueue) -> None:
    assert await queue.heartbeat("no-such-task", "worker-1:1:0000") is HeartbeatStatus.LOST


async def test_heartbeat_many_reports_each_claim(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC)
    await queue.enqueue(FUNC)
    first, second = await queue.dequeue_many(limit=2, lease=5)

    statuses = await queue.heartbeat_many(
        [(first.id, claim_token(first)), (second.id, "stale:1:0000")]
    )
    assert statuses == {first.id: HeartbeatStatus.OK, second.id: HeartbeatStatus.LOST}


async def test_recover_expired_leaves_live_leases_alone(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC)
    await claim(queue, lease=5)

    assert await queue.recover_expired() == 0


async def test_recover_expired_returns_the_count_of_expired_leases(queue: BaseTaskQueue) -> None:
    for _ in range(3):
        await queue.enqueue(FUNC, max_retries=3)
    await queue.dequeue_many(limit=2, lease=LEASE)
    await asyncio.sleep(PAST_LEASE)

    assert await queue.recover_expired() == 2


async def test_task_whose_lease_expired_is_pending_again(queue: BaseTaskQueue) -> None:
    task = await _claim_and_lose_lease(queue)

    stored = await queue.get_task(task.id)
    assert stored is not None
    assert stored.status is TaskStatus.PENDING
    assert await queue.get_queue_size() == 1


async def test_task_whose_lease_expired_is_claimed_again_as_attempt_two(
    queue: BaseTaskQueue,
) -> None:
    lost = await _claim_and_lose_lease(queue)

    again = await claim(queue, worker_id="worker-2", lease=5)
    assert again.id == lost.id
    assert again.attempts == 2
    assert again.claim != lost.claim


async def test_stale_claim_cannot_complete_a_reclaimed_task(queue: BaseTaskQueue) -> None:
    lost = await _claim_and_lose_lease(queue)
    current = await claim(queue, worker_id="worker-2", lease=5)

    assert await queue.complete(lost.id, claim_token(lost)) is False

    stored = await queue.get_task(lost.id)
    assert stored is not None
    assert stored.status is TaskStatus.RUNNING
    assert stored.claim == current.claim


async def test_stale_claim_cannot_fail_a_reclaimed_task(queue: BaseTaskQueue) -> None:
    lost = await _claim_and_lose_lease(queue)
    current = await claim(queue, worker_id="worker-2", lease=5)

    assert await queue.fail(lost.id, claim_token(lost), error_type="ValueError") is None

    stored = await queue.get_task(lost.id)
    assert stored is not None
    assert stored.status is TaskStatus.RUNNING
    assert stored.claim == current.claim
    assert stored.error_type is None


async def test_stale_claim_cannot_complete_a_recovered_task(queue: BaseTaskQueue) -> None:
    lost = await _claim_and_lose_lease(queue)

    assert await queue.complete(lost.id, claim_token(lost)) is False

    stored = await queue.get_task(lost.id)
    assert stored is not None
    assert stored.status is TaskStatus.PENDING


async def test_current_claim_completes_a_reclaimed_task(queue: BaseTaskQueue) -> None:
    await _claim_and_lose_lease(queue)
    current = await claim(queue, worker_id="worker-2", lease=5)

    assert await queue.complete(current.id, claim_token(current)) is True


async def test_lease_expiring_on_the_last_attempt_makes_the_task_dead(
    queue: BaseTaskQueue,
) -> None:
    task = await _claim_and_lose_lease(queue, max_retries=0)

    stored = await queue.get_task(task.id)
    assert stored is not None
    assert stored.status is TaskStatus.DEAD
    assert stored.error_type
    assert await queue.dequeue() is None


async def test_lease_expiring_on_the_last_attempt_writes_an_error_result(
    queue: BaseTaskQueue, results: BaseResultStorage
) -> None:
    queue.wire(result_storage=results)

    task = await _claim_and_lose_lease(queue, max_retries=0)

    result = await results.get(task.id)
    assert result is not None
    assert result.status is ResultStatus.ERROR
    assert result.error


async def test_release_hands_the_task_back_pending(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC, max_retries=0)
    task = await claim(queue, worker_id="worker-1", lease=5)

    assert await queue.release(task.id, claim_token(task)) is True

    stored = await queue.get_task(task.id)
    assert stored is not None
    assert stored.status is TaskStatus.PENDING


async def test_released_task_is_claimed_again_without_counting_the_attempt(
    queue: BaseTaskQueue,
) -> None:
    await queue.enqueue(FUNC, max_retries=0)
    task = await claim(queue, worker_id="worker-1", lease=5)
    await queue.release(task.id, claim_token(task))

    again = await claim(queue, worker_id="worker-2", lease=5)
    assert again.id == task.id
    assert again.attempts == 1


async def test_release_with_a_stale_claim_returns_false(queue: BaseTaskQueue) -> None:
    lost = await _claim_and_lose_lease(queue)
    current = await claim(queue, worker_id="worker-2", lease=5)

    assert await queue.release(lost.id, claim_token(lost)) is False

    stored = await queue.get_task(lost.id)
    assert stored is not None
    assert stored.status is TaskStatus.RUNNING
    assert stored.claim == current.claim


async def test_release_of_a_task_asked_to_cancel_ends_it_cancelled(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC)
    task = await claim(queue, lease=5)
    await queue.cancel(task.id)

    await queue.release(task.id, claim_token(task))

    stored = await queue.get_task(task.id)
    assert stored is not None
    assert stored.status is TaskStatus.CANCELLED
    assert await queue.dequeue() is None
