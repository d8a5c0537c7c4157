"""Outcomes: completion, failure and retry, the dead-letter queue, cancellation."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from omniq._time import utcnow
from omniq.exceptions import TaskNotFound
from omniq.models.result import ResultStatus, TaskResult
from omniq.models.task import TaskStatus
from omniq.storage.base import BaseResultStorage, BaseTaskQueue, Completion, HeartbeatStatus

from .helpers import FUNC, assert_time_close, claim, claim_token


async def test_complete_marks_the_task_success_with_finished_at(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC)
    task = await claim(queue, lease=5)

    assert await queue.complete(task.id, claim_token(task)) is True

    stored = await queue.get_task(task.id)
    assert stored is not None
    assert stored.status is TaskStatus.SUCCESS
    assert stored.finished_at is not None
    assert task.started_at is not None
    assert stored.finished_at >= task.started_at


async def test_completed_task_is_not_claimed_again(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC)
    task = await claim(queue, lease=5)
    await queue.complete(task.id, claim_token(task))

    assert await queue.dequeue() is None


async def test_complete_twice_is_refused_the_second_time(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC)
    task = await claim(queue, lease=5)

    assert await queue.complete(task.id, claim_token(task)) is True
    assert await queue.complete(task.id, claim_token(task)) is False


async def test_complete_with_result_storage_stores_the_result(
    queue: BaseTaskQueue, results: BaseResultStorage
) -> None:
    await queue.enqueue(FUNC)
    task = await claim(queue, lease=5)

    done = TaskResult(task_id=task.id, result=42)
    assert await queue.complete(task.id, claim_token(task), done, result_storage=results)

    stored = await results.get(task.id)
    assert stored is not None
    assert stored.result == 42


async def test_complete_many_stores_results_and_acknowledges(
    queue: BaseTaskQueue, results: BaseResultStorage
) -> None:
    for i in range(3):
        await queue.enqueue(FUNC, args=(i, i))
    claimed = await queue.dequeue_many(limit=3, lease=5)

    acks = await queue.complete_many(
        [
            Completion(t.id, claim_token(t), TaskResult(task_id=t.id, result=t.args[0] * 10))
            for t in claimed
        ],
        result_storage=results,
    )

    assert acks == [True, True, True]
    found = await results.get_many([t.id for t in claimed])
    assert {task_id: r.result for task_id, r in found.items()} == {
        t.id: t.args[0] * 10 for t in claimed
    }
    for t in claimed:
        stored = await queue.get_task(t.id)
        assert stored is not None
        assert stored.status is TaskStatus.SUCCESS


async def test_complete_many_refuses_only_the_stale_claims(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC)
    await queue.enqueue(FUNC)
    first, second = await queue.dequeue_many(limit=2, lease=5)

    acks = await queue.complete_many(
        [Completion(first.id, claim_token(first)), Completion(second.id, "stale:1:0000")]
    )

    assert acks == [True, False]
    stored = await queue.get_task(second.id)
    assert stored is not None
    assert stored.status is TaskStatus.RUNNING


async def test_fail_with_retry_at_puts_the_task_back_to_pending_at_retry_at(
    queue: BaseTaskQueue,
) -> None:
    await queue.enqueue(FUNC, max_retries=3)
    task = await claim(queue, lease=5)
    retry_at = utcnow() + timedelta(seconds=60)

    failed = await queue.fail(
        task.id, claim_token(task), error_type="ValueError", error_message="boom", retry_at=retry_at
    )

    assert failed is not None
    assert failed.status is TaskStatus.PENDING
    stored = await queue.get_task(task.id)
    assert stored is not None
    assert stored.status is TaskStatus.PENDING
    assert_time_close(stored.eta, retry_at)


async def test_task_failed_with_retry_at_is_not_claimable_before_it(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC, max_retries=3)
    task = await claim(queue, lease=5)
    await queue.fail(task.id, claim_token(task), retry_at=utcnow() + timedelta(seconds=60))

    assert await queue.dequeue() is None


async def test_task_failed_with_retry_at_is_claimed_again_after_it(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC, max_retries=3)
    task = await claim(queue, lease=5)
    await queue.fail(task.id, claim_token(task), retry_at=utcnow() + timedelta(seconds=0.2))
    await asyncio.sleep(0.3)

    again = await claim(queue, lease=5)
    assert again.id == task.id
    assert again.attempts == 2


async def test_fail_without_retry_at_makes_the_task_dead_keeping_the_error(
    queue: BaseTaskQueue,
) -> None:
    await queue.enqueue(FUNC, max_retries=3)
    task = await claim(queue, lease=5)

    failed = await queue.fail(
        task.id,
        claim_token(task),
        error_type="ValueError",
        error_message="bad input",
        error_traceback="Traceback (most recent call last): ...",
    )

    assert failed is not None
    assert failed.status is TaskStatus.DEAD
    stored = await queue.get_task(task.id)
    assert stored is not None
    assert stored.status is TaskStatus.DEAD
    assert stored.error_type == "ValueError"
    assert stored.error_message == "bad input"
    assert stored.error_traceback == "Traceback (most recent call last): ..."
    assert stored.finished_at is not None


async def test_list_dead_lists_dead_tasks_only(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC)
    task = await claim(queue, lease=5)
    await queue.fail(task.id, claim_token(task), error_type="ValueError")
    await queue.enqueue(FUNC)

    assert [t.id for t in await queue.list_dead()] == [task.id]


async def test_requeue_puts_a_dead_task_back_to_pending_with_attempts_reset(
    queue: BaseTaskQueue,
) -> None:
    await queue.enqueue(FUNC)
    task = await claim(queue, lease=5)
    await queue.fail(task.id, claim_token(task), error_type="ValueError")

    assert await queue.requeue(task.id) is True

    stored = await queue.get_task(task.id)
    assert stored is not None
    assert stored.status is TaskStatus.PENDING
    assert stored.attempts == 0
    assert await queue.list_dead() == []


async def test_requeued_task_is_claimed_again(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC)
    task = await claim(queue, lease=5)
    await queue.fail(task.id, claim_token(task), error_type="ValueError")
    await queue.requeue(task.id)

    again = await claim(queue, lease=5)
    assert again.id == task.id
    assert again.attempts == 1


async def test_requeue_makes_an_expired_task_claimable_again(queue: BaseTaskQueue) -> None:
    task_id = await queue.enqueue(FUNC, ttl=0.1)
    await asyncio.sleep(0.2)
    await queue.cleanup()

    assert await queue.requeue(task_id) is True

    stored = await queue.get_task(task_id)
    assert stored is not None
    assert stored.status is TaskStatus.PENDING
    assert stored.expires_at is None
    assert (await claim(queue, lease=5)).id == task_id


async def test_requeue_makes_a_cancelled_task_claimable_again(queue: BaseTaskQueue) -> None:
    task_id = await queue.enqueue(FUNC)
    await queue.cancel(task_id)

    assert await queue.requeue(task_id) is True

    assert (await claim(queue, lease=5)).id == task_id


async def test_requeue_of_an_unknown_id_raises_task_not_found(queue: BaseTaskQueue) -> None:
    with pytest.raises(TaskNotFound):
        await queue.requeue("no-such-task")


async def test_requeue_of_a_pending_task_returns_false(queue: BaseTaskQueue) -> None:
    task_id = await queue.enqueue(FUNC)

    assert await queue.requeue(task_id) is False
    assert await queue.get_queue_size() == 1


async def test_task_failing_every_attempt_is_dead_after_max_retries_plus_one_claims(
    queue: BaseTaskQueue,
) -> None:
    task_id = await queue.enqueue(FUNC, max_retries=2)
    claims = 0
    while claims < 10 and (task := await queue.dequeue(lease=5)) is not None:
        claims += 1
        await queue.fail(task.id, claim_token(task), error_type="ValueError", retry_at=utcnow())

    assert claims == 3
    stored = await queue.get_task(task_id)
    assert stored is not None
    assert stored.status is TaskStatus.DEAD
    assert stored.attempts == 3


async def test_cancel_of_a_pending_task_returns_true_and_cancels_it(
    queue: BaseTaskQueue,
) -> None:
    task_id = await queue.enqueue(FUNC)

    assert await queue.cancel(task_id) is True

    stored = await queue.get_task(task_id)
    assert stored is not None
    assert stored.status is TaskStatus.CANCELLED


async def test_cancelled_task_is_never_claimed(queue: BaseTaskQueue) -> None:
    task_id = await queue.enqueue(FUNC)
    await queue.cancel(task_id)

    assert await queue.dequeue() is None


async def test_cancelled_delayed_task_is_never_claimed(queue: BaseTaskQueue) -> None:
    task_id = await queue.enqueue(FUNC, run_in=0.1)
    assert await queue.cancel(task_id) is True
    await asyncio.sleep(0.2)

    assert await queue.dequeue() is None


async def test_cancel_of_a_pending_task_writes_a_cancelled_result(
    queue: BaseTaskQueue, results: BaseResultStorage
) -> None:
    queue.wire(result_storage=results)
    task_id = await queue.enqueue(FUNC)

    await queue.cancel(task_id)

    result = await results.get(task_id)
    assert result is not None
    assert result.status is ResultStatus.CANCELLED


async def test_cancel_of_a_running_task_returns_true(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC)
    task = await claim(queue, lease=5)

    assert await queue.cancel(task.id) is True


async def test_cancel_of_a_running_task_is_seen_at_the_next_heartbeat(
    queue: BaseTaskQueue,
) -> None:
    await queue.enqueue(FUNC)
    task = await claim(queue, lease=5)

    await queue.cancel(task.id)

    assert await queue.heartbeat(task.id, claim_token(task)) is HeartbeatStatus.CANCEL


async def test_fail_with_status_cancelled_ends_a_running_task_cancelled(
    queue: BaseTaskQueue,
) -> None:
    await queue.enqueue(FUNC)
    task = await claim(queue, lease=5)
    await queue.cancel(task.id)

    ended = await queue.fail(task.id, claim_token(task), status=TaskStatus.CANCELLED)

    assert ended is not None
    stored = await queue.get_task(task.id)
    assert stored is not None
    assert stored.status is TaskStatus.CANCELLED


async def test_cancel_of_a_finished_task_returns_false(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC)
    task = await claim(queue, lease=5)
    await queue.complete(task.id, claim_token(task))

    assert await queue.cancel(task.id) is False

    stored = await queue.get_task(task.id)
    assert stored is not None
    assert stored.status is TaskStatus.SUCCESS


async def test_cancel_of_an_unknown_id_raises_task_not_found(queue: BaseTaskQueue) -> None:
    with pytest.raises(TaskNotFound):
        await queue.cancel("no-such-task")
