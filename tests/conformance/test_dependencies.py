"""Dependencies (ARCHITECTURE section 3): WAITING until every dependency succeeded, then PENDING;
CANCELLED with the reason when one ends DEAD/CANCELLED/EXPIRED, unless the policy says run anyway.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from omniq.exceptions import TaskNotFound
from omniq.models.event import EventType
from omniq.models.result import ResultStatus
from omniq.models.task import DependencyPolicy, Task, TaskStatus
from omniq.storage.base import BaseResultStorage, BaseTaskQueue

from .helpers import FUNC, claim, claim_token, record_events


async def _run(queue: BaseTaskQueue, task_id: str) -> None:
    """Claims ``task_id`` (it must be the next ready task) and completes it."""
    task = await claim(queue, lease=5)
    assert task.id == task_id
    assert await queue.complete(task.id, claim_token(task))


async def _status(queue: BaseTaskQueue, task_id: str) -> TaskStatus:
    task = await queue.get_task(task_id)
    assert task is not None
    return task.status


async def test_a_dependent_waits_and_is_not_claimed(queue: BaseTaskQueue) -> None:
    parent = await queue.enqueue(FUNC)
    child = await queue.enqueue(FUNC, depends_on=[parent])

    assert await _status(queue, child) is TaskStatus.WAITING
    first = await claim(queue, lease=5)
    assert first.id == parent
    assert await queue.dequeue() is None, "a WAITING task must not be claimed"
    assert await queue.get_queue_size() == 0
    assert (await queue.stats())["default"].get("waiting") == 1


async def test_a_dependent_becomes_pending_when_its_dependency_succeeds(
    queue: BaseTaskQueue,
) -> None:
    parent = await queue.enqueue(FUNC)
    child = await queue.enqueue(FUNC, depends_on=[parent])

    await _run(queue, parent)

    assert await _status(queue, child) is TaskStatus.PENDING
    await _run(queue, child)


async def test_a_dependent_waits_for_every_dependency(queue: BaseTaskQueue) -> None:
    a = await queue.enqueue(FUNC)
    b = await queue.enqueue(FUNC)
    child = await queue.enqueue(FUNC, depends_on=[a, b])

    await _run(queue, a)
    assert await _status(queue, child) is TaskStatus.WAITING
    await _run(queue, b)
    assert await _status(queue, child) is TaskStatus.PENDING


async def test_a_dependency_that_already_succeeded_leaves_the_dependent_ready(
    queue: BaseTaskQueue,
) -> None:
    parent = await queue.enqueue(FUNC)
    await _run(queue, parent)

    child = await queue.enqueue(FUNC, depends_on=[parent])

    assert await _status(queue, child) is TaskStatus.PENDING
    await _run(queue, child)


async def test_an_unknown_dependency_is_refused_at_enqueue(queue: BaseTaskQueue) -> None:
    with pytest.raises(TaskNotFound, match="no-such-task"):
        await queue.enqueue(FUNC, depends_on=["no-such-task"], task_id="orphan")
    assert await queue.get_task("orphan") is None


async def test_a_cycle_in_one_batch_is_refused_naming_it(queue: BaseTaskQueue) -> None:
    a = Task(func=FUNC, id="cycle-a", depends_on=("cycle-b",))
    b = Task(func=FUNC, id="cycle-b", depends_on=("cycle-a",))

    with pytest.raises(ValueError, match=r"cycle-(a|b) -> cycle-(a|b) -> cycle-(a|b)"):
        await queue.enqueue_many([a, b])
    assert await queue.get_task("cycle-a") is None


async def test_a_task_depending_on_itself_is_refused(queue: BaseTaskQueue) -> None:
    with pytest.raises(ValueError, match="itself"):
        await queue.enqueue_many([Task(func=FUNC, id="selfish", depends_on=("selfish",))])


async def test_dependencies_inside_one_batch_resolve_in_order(queue: BaseTaskQueue) -> None:
    a = Task(func=FUNC)
    b = Task(func=FUNC, depends_on=(a.id,))
    c = Task(func=FUNC, depends_on=(b.id,))
    await queue.enqueue_many([c, b, a])  # order in the batch does not matter

    assert [await _status(queue, t.id) for t in (a, b, c)] == [
        TaskStatus.PENDING,
        TaskStatus.WAITING,
        TaskStatus.WAITING,
    ]
    await _run(queue, a.id)
    await _run(queue, b.id)
    await _run(queue, c.id)


@pytest.mark.parametrize("ending", ["dead", "cancelled", "expired"])
async def test_a_failed_dependency_cancels_the_dependents_with_the_reason(
    queue: BaseTaskQueue, results: BaseResultStorage, ending: str
) -> None:
    queue.wire(result_storage=results)
    recorder = record_events(queue)
    parent = await queue.enqueue(FUNC, ttl=60)
    child = await queue.enqueue(FUNC, depends_on=[parent])
    grandchild = await queue.enqueue(FUNC, depends_on=[child])

    if ending == "dead":
        task = await claim(queue, lease=5)
        await queue.fail(task.id, claim_token(task), error_type="ValueError", error_message="no")
    elif ending == "cancelled":
        assert await queue.cancel(parent)
    else:
        # expire the parent through the TTL sweep, by moving its deadline into the past
        await queue.purge()
        parent_task = Task(func=FUNC, expires_at=None)
        parent_task.expires_at = parent_task.created_at + timedelta(milliseconds=50)
        parent = parent_task.id
        await queue.enqueue_many([parent_task])
        child = await queue.enqueue(FUNC, depends_on=[parent])
        grandchild = await queue.enqueue(FUNC, depends_on=[child])
        await asyncio.sleep(0.1)
        assert (await queue.cleanup())["expired_tasks"] == 1

    stored = await queue.get_task(child)
    assert stored is not None
    assert stored.status is TaskStatus.CANCELLED
    assert stored.error_type == "DependencyFailed"
    assert parent in (stored.error_message or "")
    assert ending in (stored.error_message or "")
    # the cancellation cascades down the chain
    assert await _status(queue, grandchild) is TaskStatus.CANCELLED
    # waiters on the dependent's result are told
    result = await results.get(child)
    assert result is not None
    assert result.status is ResultStatus.CANCELLED
    assert EventType.DEPENDENCY_FAILED in recorder.types_for(child)
    assert EventType.CANCELLED in recorder.types_for(child)
    assert await queue.dequeue() is None


async def test_run_anyway_runs_the_dependent_after_a_failed_dependency(
    queue: BaseTaskQueue,
) -> None:
    parent = await queue.enqueue(FUNC)
    child = await queue.enqueue(
        FUNC, depends_on=[parent], dependency_policy=DependencyPolicy.RUN_ANYWAY
    )
    task = await claim(queue, lease=5)
    await queue.fail(task.id, claim_token(task), error_type="ValueError", error_message="no")

    assert await _status(queue, child) is TaskStatus.PENDING
    await _run(queue, child)


async def test_a_dependency_already_dead_cancels_the_new_dependent_at_once(
    queue: BaseTaskQueue,
) -> None:
    parent = await queue.enqueue(FUNC)
    task = await claim(queue, lease=5)
    await queue.fail(task.id, claim_token(task), error_type="ValueError", error_message="no")

    child = await queue.enqueue(FUNC, depends_on=[parent])

    assert await _status(queue, child) is TaskStatus.CANCELLED


async def test_a_waiting_task_can_be_cancelled(queue: BaseTaskQueue) -> None:
    parent = await queue.enqueue(FUNC)
    child = await queue.enqueue(FUNC, depends_on=[parent])

    assert await queue.cancel(child)
    assert await _status(queue, child) is TaskStatus.CANCELLED
    await _run(queue, parent)
    assert await _status(queue, child) is TaskStatus.CANCELLED


async def test_events_tell_waiting_then_enqueued(queue: BaseTaskQueue) -> None:
    recorder = record_events(queue)
    parent = await queue.enqueue(FUNC)
    child = await queue.enqueue(FUNC, depends_on=[parent])
    assert recorder.types_for(child) == [EventType.WAITING]

    await _run(queue, parent)

    assert recorder.types_for(child) == [EventType.WAITING, EventType.ENQUEUED]


async def test_a_fan_in_of_many_dependencies_runs_once(queue: BaseTaskQueue) -> None:
    parents = [Task(func=FUNC) for _ in range(20)]
    await queue.enqueue_many(parents)
    child = await queue.enqueue(FUNC, depends_on=[p.id for p in parents])

    # complete them in one batch, as a worker's coalesced flush does
    claimed = await queue.dequeue_many(None, 20, lease=5)
    assert len(claimed) == 20
    from omniq.storage.base import Completion

    acks = await queue.complete_many([Completion(t.id, claim_token(t)) for t in claimed])
    assert all(acks)

    assert await _status(queue, child) is TaskStatus.PENDING
    await _run(queue, child)
    assert await queue.dequeue() is None


async def test_the_sweep_settles_a_dependent_nobody_settled(queue: BaseTaskQueue) -> None:
    """A process that died between acknowledging a dependency and settling its dependents: the
    upkeep sweep finds the dependent and moves it on."""
    parent = await queue.enqueue(FUNC)
    child = await queue.enqueue(FUNC, depends_on=[parent])
    task = await claim(queue, lease=5)

    async def nothing(finished: object) -> None:
        return None

    queue._settle_dependents = nothing  # type: ignore[method-assign]
    try:
        assert await queue.complete(task.id, claim_token(task))
        assert await _status(queue, child) is TaskStatus.WAITING
    finally:
        del queue._settle_dependents
    assert await queue.settle_waiting() == 1
    assert await _status(queue, child) is TaskStatus.PENDING
