"""``omniq.current_task().set_progress`` inside tasks run by the worker (issue 19, item 3): the
report reaches the store under the task's claim, coalesced, with the final value written before
the acknowledgement, from async code, thread pools and process pools alike."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

import omniq
from omniq import AsyncOmniQ, TaskStatus
from omniq.exceptions import NoCurrentTask, TaskFailedError
from omniq.models.progress import TaskProgress
from omniq.storage.memory import AsyncMemoryQueue
from omniq.workers._progress import WRITE_INTERVAL, ProgressWriter
from tests.worker import progress_tasks as pt


@pytest.fixture(params=["async", "thread", "process"])
async def oq(request: pytest.FixtureRequest) -> AsyncIterator[AsyncOmniQ]:
    app = AsyncOmniQ(
        task_queue=AsyncMemoryQueue(lease_timeout=5.0),
        worker_type=request.param,
        worker_config={"max_workers": 2},
    )
    async with app:
        await app.start_worker()
        yield app


def test_current_task_outside_a_task_says_so() -> None:
    with pytest.raises(NoCurrentTask, match="outside a running task"):
        omniq.current_task()


async def test_current_task_outside_a_task_in_async_code_says_so() -> None:
    with pytest.raises(NoCurrentTask):
        omniq.current_task()


async def test_final_progress_is_stored_before_the_acknowledgement(oq: AsyncOmniQ) -> None:
    sync_id = await oq.enqueue(pt.report_steps, args=(50,))
    async_id = await oq.enqueue(pt.report_steps_async, args=(5,))
    assert await oq.get_result(sync_id, timeout=30) == 50
    assert await oq.get_result(async_id, timeout=30) == 5
    for task_id, steps in ((sync_id, 50), (async_id, 5)):
        task = await oq.get_task(task_id)
        assert task is not None
        assert task.status is TaskStatus.SUCCESS
        assert task.progress is not None
        assert task.progress.fraction == 1.0
        assert task.progress.note == f"step {steps} of {steps}"
        assert task.progress.attempt == 1
        assert task.progress.updated_at is not None
    sync_task = await oq.get_task(sync_id)
    assert sync_task is not None
    assert sync_task.progress is not None
    assert sync_task.progress.data == {"n": 50}


async def test_a_task_that_never_reports_has_no_progress(oq: AsyncOmniQ) -> None:
    task_id = await oq.enqueue(pt.no_report)
    assert await oq.get_result(task_id, timeout=30) == 1
    task = await oq.get_task(task_id)
    assert task is not None
    assert task.progress is None
    assert await oq.get_progress(task_id) is None


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (1.5, "ValueError"),
        (-0.1, "ValueError"),
        (float("nan"), "ValueError"),
        ("half", "TypeError"),
    ],
)
async def test_a_bad_fraction_fails_the_task_naming_the_value(
    oq: AsyncOmniQ, value: object, error: str
) -> None:
    task_id = await oq.enqueue(pt.bad_progress, args=(value,), max_retries=0)
    with pytest.raises(TaskFailedError) as info:
        await oq.get_result(task_id, timeout=30)
    assert info.value.error_type == error
    assert repr(value) in (info.value.error_message or "")


async def test_progress_reads_back_while_the_task_runs(oq: AsyncOmniQ, tmp_path: object) -> None:
    marker, release = f"{tmp_path}/marker", f"{tmp_path}/release"
    task_id = await oq.enqueue(pt.report_then_wait, args=(0.4, marker, release))
    progress = await _wait_for_progress(oq, task_id, 0.4)
    assert progress.note is not None
    assert progress.note.startswith("pid ")
    running = await oq.get_task(task_id)
    assert running is not None
    assert running.status is TaskStatus.RUNNING
    open(release, "w").close()  # noqa: ASYNC230
    assert await oq.get_result(task_id, timeout=30) == "released"
    final = await oq.get_progress(task_id)
    assert final is not None
    assert (final.fraction, final.note) == (1.0, "released")


async def _wait_for_progress(oq: AsyncOmniQ, task_id: str, fraction: float) -> TaskProgress:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        progress = await oq.get_progress(task_id)
        if progress is not None and progress.fraction == fraction:
            return progress
        await asyncio.sleep(0.05)
    raise AssertionError(f"task {task_id} never showed progress {fraction}")


# -- the writer -------------------------------------------------------------------------------
async def test_reports_in_a_tight_loop_are_coalesced() -> None:
    """20,000 reports from a thread over a second or so: a handful of writes, the last value
    winning, never one write per report."""
    queue = AsyncMemoryQueue(lease_timeout=30)
    async with queue:
        await queue.enqueue("operator:add", args=(1, 2))
        task = await queue.dequeue(lease=30)
        assert task is not None
        writer = ProgressWriter(queue, "test")
        writer.start()

        def tight_loop() -> float:
            started = time.monotonic()
            for n in range(1, 20_001):
                writer.put(task.id, task.claim or "", TaskProgress(fraction=n / 20_000))
                if n % 2_000 == 0:
                    time.sleep(0.1)
            return time.monotonic() - started

        took = await asyncio.to_thread(tight_loop)
        await writer.flush(task.id)
        stored = await queue.get_task(task.id)
        assert stored is not None
        assert stored.progress is not None
        assert stored.progress.fraction == 1.0
        # one write per interval at most, and the final flush
        assert 1 <= writer.writes <= took / WRITE_INTERVAL + 2
        writer.stop()


async def test_a_stale_claim_s_reports_are_dropped_after_the_store_refuses_one() -> None:
    queue = AsyncMemoryQueue(lease_timeout=30)
    async with queue:
        await queue.enqueue("operator:add", args=(1, 2))
        task = await queue.dequeue(lease=30)
        assert task is not None
        writer = ProgressWriter(queue, "test")
        writer.start()
        writer.put(task.id, "a-claim-this-worker-lost", TaskProgress(fraction=0.5))
        await asyncio.sleep(WRITE_INTERVAL * 2)
        writer.put(task.id, "a-claim-this-worker-lost", TaskProgress(fraction=0.9))
        assert task.id in writer._lost
        assert not writer._pending  # dropped at once: the store is not asked again
        stored = await queue.get_task(task.id)
        assert stored is not None
        assert stored.progress is None
        writer.stop()
