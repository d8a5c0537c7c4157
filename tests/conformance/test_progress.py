"""Progress (issue 19, item 3): a running task's report is kept in its record under its claim,
read back by ``get_task`` and the listing, and refused for a claim that is no longer the task's."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from omniq.exceptions import SerializationError
from omniq.models.progress import MAX_PROGRESS_BYTES, TaskProgress
from omniq.models.result import TaskResult
from omniq.models.task import TaskStatus
from omniq.storage.base import BaseTaskQueue, Capability, Completion

from .helpers import FUNC, assert_identical, claim, claim_token

WHEN = datetime(2026, 5, 1, 12, 30, tzinfo=UTC)


def report(fraction: float, note: str | None = None, data: object = None) -> TaskProgress:
    return TaskProgress(fraction=fraction, note=note, data=data, attempt=1, updated_at=WHEN)


async def test_every_backend_offers_progress(queue: BaseTaskQueue) -> None:
    assert queue.supports(Capability.PROGRESS)


async def test_a_task_that_never_reported_has_no_progress(queue: BaseTaskQueue) -> None:
    task_id = await queue.enqueue(FUNC, args=(1, 2))
    stored = await queue.get_task(task_id)
    assert stored is not None
    assert stored.progress is None
    await claim(queue, lease=30)
    running = await queue.get_task(task_id)
    assert running is not None
    assert running.progress is None


async def test_progress_of_a_running_task_reads_back_through_get_task(
    queue: BaseTaskQueue,
) -> None:
    await queue.enqueue(FUNC, args=(1, 2))
    task = await claim(queue, lease=30)
    data = {"rows": 400, "last": "k-17", "at": WHEN, "exact": Decimal("1.5"), "pair": (1, 2)}

    assert await queue.set_progress(task.id, claim_token(task), report(0.4, "loading", data))

    stored = await queue.get_task(task.id)
    assert stored is not None
    assert stored.progress is not None
    assert stored.progress.fraction == 0.4
    assert stored.progress.note == "loading"
    assert stored.progress.attempt == 1
    assert stored.progress.updated_at == WHEN
    assert_identical(stored.progress.data, data)  # the one serializer: types come back as sent
    assert stored.status is TaskStatus.RUNNING


async def test_the_last_report_wins(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC)
    task = await claim(queue, lease=30)
    token = claim_token(task)
    for fraction in (0.1, 0.5, 0.9):
        assert await queue.set_progress(task.id, token, report(fraction, f"at {fraction}"))
    stored = await queue.get_task(task.id)
    assert stored is not None
    assert stored.progress is not None
    assert (stored.progress.fraction, stored.progress.note) == (0.9, "at 0.9")


async def test_a_stale_claim_cannot_write_progress(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC, max_retries=3)
    first = await claim(queue, worker_id="worker-1", lease=0.2)
    assert await queue.set_progress(first.id, claim_token(first), report(0.3, "first holder"))
    await asyncio.sleep(0.3)
    assert await queue.recover_expired() == 1
    second = await claim(queue, worker_id="worker-2", lease=30)
    assert await queue.set_progress(second.id, claim_token(second), report(0.1, "second holder"))

    # the first worker's lease was lost: its late report is refused and changes nothing
    assert not await queue.set_progress(first.id, claim_token(first), report(0.99, "zombie"))
    assert not await queue.set_progress(first.id, "not-a-claim", report(0.99, "forged"))

    stored = await queue.get_task(second.id)
    assert stored is not None
    assert stored.progress is not None
    assert stored.progress.note == "second holder"


async def test_progress_is_refused_for_tasks_that_are_not_running(queue: BaseTaskQueue) -> None:
    pending = await queue.enqueue(FUNC)
    assert not await queue.set_progress(pending, "any-claim", report(0.5))
    assert not await queue.set_progress("no-such-task", "any-claim", report(0.5))
    task = await claim(queue, lease=30)
    token = claim_token(task)
    assert await queue.set_progress(task.id, token, report(1.0, "done"))
    assert await queue.complete(task.id, token, TaskResult.for_task(task, "success", result=3))

    # finished: the claim no longer holds, and the last report is kept for readers
    assert not await queue.set_progress(task.id, token, report(0.2, "after the end"))
    stored = await queue.get_task(task.id)
    assert stored is not None
    assert stored.status is TaskStatus.SUCCESS
    assert stored.progress is not None
    assert stored.progress.note == "done"


async def test_set_progress_many_flags_each_report(queue: BaseTaskQueue) -> None:
    for n in range(3):
        await queue.enqueue(FUNC, args=(n, n))
    tasks = await queue.dequeue_many(limit=3, lease=30)
    assert len(tasks) == 3
    reports = [(t.id, claim_token(t), report(0.25 * (i + 1))) for i, t in enumerate(tasks)]
    reports.insert(1, (tasks[0].id, "stale-claim", report(0.9)))

    assert await queue.set_progress_many(reports) == [True, False, True, True]
    assert await queue.set_progress_many([]) == []

    found = {t.id: t for t in await queue.list_tasks(status=TaskStatus.RUNNING)}
    assert {i: found[i].progress.fraction for i in found if found[i].progress} == {
        tasks[0].id: 0.25,
        tasks[1].id: 0.5,
        tasks[2].id: 0.75,
    }


async def test_progress_data_must_be_plain_and_small(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC)
    task = await claim(queue, lease=30)
    token = claim_token(task)
    with pytest.raises(SerializationError, match="plain data"):
        await queue.set_progress(task.id, token, report(0.5, data=object()))
    with pytest.raises(ValueError, match=f"over the limit of {MAX_PROGRESS_BYTES}"):
        await queue.set_progress(task.id, token, report(0.5, data="x" * MAX_PROGRESS_BYTES))
    stored = await queue.get_task(task.id)
    assert stored is not None
    assert stored.progress is None


async def test_a_failed_attempt_keeps_its_progress_until_the_next_report(
    queue: BaseTaskQueue,
) -> None:
    await queue.enqueue(FUNC, max_retries=2)
    first = await claim(queue, lease=30)
    assert await queue.set_progress(first.id, claim_token(first), report(0.6, "attempt one"))
    await queue.fail(first.id, claim_token(first), error_type="E", status=TaskStatus.PENDING)
    pending = await queue.get_task(first.id)
    assert pending is not None
    assert pending.progress is not None
    assert pending.progress.note == "attempt one"

    second = await claim(queue, lease=30)
    assert await queue.set_progress(
        second.id,
        claim_token(second),
        TaskProgress(fraction=0.1, note="attempt two", attempt=2, updated_at=WHEN),
    )
    again = await queue.get_task(second.id)
    assert again is not None
    assert again.progress is not None
    assert (again.progress.note, again.progress.attempt) == ("attempt two", 2)


async def test_acknowledging_with_a_result_keeps_the_final_progress(
    queue: BaseTaskQueue,
) -> None:
    await queue.enqueue(FUNC)
    task = await claim(queue, lease=30)
    token = claim_token(task)
    assert await queue.set_progress(task.id, token, report(1.0, "all rows"))
    result = TaskResult.for_task(task, "success", result="ok")
    assert await queue.complete_many([Completion(task.id, token, result)]) == [True]
    stored = await queue.get_task(task.id)
    assert stored is not None
    assert stored.progress is not None
    assert stored.progress.fraction == 1.0
