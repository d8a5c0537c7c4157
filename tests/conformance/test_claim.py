"""Claiming: what dequeue returns, in which order, when it waits, and that a claim is exclusive."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from omniq._time import utcnow
from omniq.models.task import Task, TaskStatus
from omniq.storage.base import BaseTaskQueue

from .helpers import (
    FUNC,
    LONG_TIMEOUT,
    WAKE_UP_BOUND,
    Poison,
    claim,
    claim_token,
    nonzero_stats,
)


async def test_dequeue_on_empty_queue_returns_none_without_waiting(queue: BaseTaskQueue) -> None:
    # timeout=None means "don't wait": the bound only catches a dequeue that blocks anyway
    assert await asyncio.wait_for(queue.dequeue(timeout=None), WAKE_UP_BOUND) is None


async def test_dequeue_with_timeout_on_empty_queue_returns_none_after_it(
    queue: BaseTaskQueue,
) -> None:
    assert await queue.dequeue(timeout=0.1) is None


async def test_dequeue_waits_for_a_task_enqueued_meanwhile(queue: BaseTaskQueue) -> None:
    waiting = asyncio.create_task(queue.dequeue(timeout=LONG_TIMEOUT))
    await asyncio.sleep(0.05)
    task_id = await queue.enqueue(FUNC, args=(1, 2))

    task = await asyncio.wait_for(waiting, WAKE_UP_BOUND)
    assert task is not None
    assert task.id == task_id


async def test_dequeue_takes_first_nonempty_queue_in_order(tiered_queue: BaseTaskQueue) -> None:
    low = await tiered_queue.enqueue(FUNC, queue_name="low", priority=100)
    medium = await tiered_queue.enqueue(FUNC, queue_name="medium", priority=50)
    high = await tiered_queue.enqueue(FUNC, queue_name="high")

    order = [(await claim(tiered_queue)).id for _ in range(3)]
    assert order == [high, medium, low]


async def test_dequeue_takes_queues_in_the_order_given(tiered_queue: BaseTaskQueue) -> None:
    high = await tiered_queue.enqueue(FUNC, queue_name="high")
    low = await tiered_queue.enqueue(FUNC, queue_name="low")

    order = [(await claim(tiered_queue, "low", "high")).id for _ in range(2)]
    assert order == [low, high]


async def test_dequeue_ignores_queues_not_asked_for(tiered_queue: BaseTaskQueue) -> None:
    await tiered_queue.enqueue(FUNC, queue_name="low")

    assert await tiered_queue.dequeue(["high", "medium"]) is None
    assert await tiered_queue.get_queue_size("low") == 1


async def test_dequeue_prefers_higher_priority_within_a_queue(queue: BaseTaskQueue) -> None:
    normal = await queue.enqueue(FUNC, priority=0)
    urgent = await queue.enqueue(FUNC, priority=10)
    soon = await queue.enqueue(FUNC, priority=5)

    order = [(await claim(queue)).id for _ in range(3)]
    assert order == [urgent, soon, normal]


async def test_dequeue_prefers_earlier_eta_at_equal_priority(queue: BaseTaskQueue) -> None:
    now = utcnow()
    recent = await queue.enqueue(FUNC, eta=now - timedelta(seconds=1))
    oldest = await queue.enqueue(FUNC, eta=now - timedelta(seconds=3))
    middle = await queue.enqueue(FUNC, eta=now - timedelta(seconds=2))

    order = [(await claim(queue)).id for _ in range(3)]
    assert order == [oldest, middle, recent]


async def test_dequeue_keeps_enqueue_order_at_equal_priority(queue: BaseTaskQueue) -> None:
    ids = [await queue.enqueue(FUNC, args=(i, i)) for i in range(20)]

    order = [(await claim(queue)).id for _ in range(20)]
    assert order == ids


async def test_dequeue_keeps_enqueue_order_at_equal_priority_and_eta(queue: BaseTaskQueue) -> None:
    eta = utcnow() - timedelta(seconds=1)
    ids = [await queue.enqueue(FUNC, args=(i, i), eta=eta) for i in range(10)]

    order = [(await claim(queue)).id for _ in range(10)]
    assert order == ids


async def test_delayed_task_is_not_claimable_before_its_eta(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC, run_in=60)

    assert await queue.dequeue() is None
    assert await queue.get_queue_size() == 1


async def test_delayed_task_is_claimable_after_its_eta(queue: BaseTaskQueue) -> None:
    task_id = await queue.enqueue(FUNC, run_in=0.2)
    await asyncio.sleep(0.3)

    assert (await claim(queue)).id == task_id


async def test_dequeue_with_timeout_returns_delayed_task_once_due(queue: BaseTaskQueue) -> None:
    eta = utcnow() + timedelta(seconds=0.3)
    task_id = await queue.enqueue(FUNC, eta=eta)

    task = await asyncio.wait_for(queue.dequeue(timeout=LONG_TIMEOUT), WAKE_UP_BOUND)
    assert task is not None
    assert task.id == task_id
    assert utcnow() >= eta


async def test_waiting_dequeue_returns_delayed_task_enqueued_meanwhile_once_due(
    queue: BaseTaskQueue,
) -> None:
    waiting = asyncio.create_task(queue.dequeue(timeout=LONG_TIMEOUT))
    await asyncio.sleep(0.05)
    eta = utcnow() + timedelta(seconds=0.3)
    task_id = await queue.enqueue(FUNC, eta=eta)

    task = await asyncio.wait_for(waiting, WAKE_UP_BOUND)
    assert task is not None
    assert task.id == task_id
    assert utcnow() >= eta


async def test_claimed_task_is_running_under_a_lease(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC, args=(1, 2))

    task = await claim(queue, worker_id="worker-1", lease=5)
    assert task.status is TaskStatus.RUNNING
    assert task.attempts == 1
    assert task.worker_id == "worker-1"
    assert task.claim
    assert task.started_at is not None
    assert task.lease_expires_at is not None
    assert task.lease_expires_at > utcnow()


async def test_claimed_task_is_stored_as_running_with_its_claim(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC, args=(1, 2))
    task = await claim(queue, worker_id="worker-1", lease=5)

    stored = await queue.get_task(task.id)
    assert stored is not None
    assert stored.status is TaskStatus.RUNNING
    assert stored.claim == task.claim
    assert stored.worker_id == "worker-1"
    assert await queue.get_queue_size() == 0


async def test_a_claimed_task_is_not_claimed_again(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC)
    await claim(queue, lease=5)

    assert await queue.dequeue() is None


async def test_concurrent_claimers_claim_every_task_exactly_once(queue: BaseTaskQueue) -> None:
    ids = await queue.enqueue_many([Task(func=FUNC, args=(i, i)) for i in range(500)])
    claimed: list[str] = []
    acknowledged: list[bool] = []

    async def claimer(number: int) -> None:
        while (task := await queue.dequeue(worker_id=f"worker-{number}", lease=30)) is not None:
            claimed.append(task.id)
            await asyncio.sleep(0)  # let the others interleave between claim and completion
            acknowledged.append(await queue.complete(task.id, claim_token(task)))

    await asyncio.gather(*(claimer(n) for n in range(50)))

    assert sorted(claimed) == sorted(ids)
    assert len(set(claimed)) == len(claimed)
    assert all(acknowledged)
    assert nonzero_stats(await queue.stats()) == {"default": {"success": 500}}


async def test_dequeue_many_returns_at_most_limit_tasks_in_order(queue: BaseTaskQueue) -> None:
    ids = [await queue.enqueue(FUNC, priority=p) for p in (1, 5, 3, 4, 2)]
    by_priority = [ids[1], ids[3], ids[2], ids[4], ids[0]]

    first = await queue.dequeue_many(limit=3)
    rest = await queue.dequeue_many(limit=10)

    assert [t.id for t in first] == by_priority[:3]
    assert [t.id for t in rest] == by_priority[3:]
    assert all(t.status is TaskStatus.RUNNING and t.claim for t in first + rest)


async def test_dequeue_many_spans_queues_in_order(tiered_queue: BaseTaskQueue) -> None:
    low = await tiered_queue.enqueue(FUNC, queue_name="low")
    high = await tiered_queue.enqueue(FUNC, queue_name="high")

    claimed = await tiered_queue.dequeue_many(limit=5)
    assert [t.id for t in claimed] == [high, low]


async def test_dequeue_many_gives_each_task_its_own_claim(queue: BaseTaskQueue) -> None:
    for _ in range(3):
        await queue.enqueue(FUNC)

    claimed = await queue.dequeue_many(limit=3, worker_id="worker-1")
    assert len({t.claim for t in claimed}) == 3


async def test_undecodable_task_is_not_returned_and_the_claimer_carries_on(
    queue: BaseTaskQueue,
) -> None:
    await queue.enqueue(FUNC, args=(Poison(),))
    healthy = await queue.enqueue(FUNC, args=(1, 2))

    assert (await claim(queue)).id == healthy


async def test_undecodable_task_goes_dead_naming_the_serialization_error(
    queue: BaseTaskQueue,
) -> None:
    poison = await queue.enqueue(FUNC, args=(Poison(),))
    assert await queue.dequeue() is None

    stored = await queue.get_task(poison)
    assert stored is not None
    assert stored.status is TaskStatus.DEAD
    assert stored.error_type == "SerializationError"
