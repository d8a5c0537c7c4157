"""The worker core on the memory backend: execution, retries, timeouts, cancellation, leases,
shutdown and events. Timings are short; nothing here asserts on speed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from omniq import AsyncOmniQ, EventType, TaskStatus
from omniq.exceptions import TaskCancelledError, TaskExpiredError, TaskFailedError
from omniq.models import ResultStatus, Task, TaskResult
from omniq.storage.memory import AsyncMemoryEventStorage, AsyncMemoryQueue, AsyncMemoryResultStorage
from omniq.workers import AsyncWorker
from tests import tasks_fixture as tf


@pytest.fixture
async def oq() -> AsyncIterator[AsyncOmniQ]:
    tf.reset()
    app = AsyncOmniQ(
        task_queue=AsyncMemoryQueue(lease_timeout=1.0),
        event_store=AsyncMemoryEventStorage(),
    )
    async with app:
        yield app


async def event_types(oq: AsyncOmniQ, task_id: str) -> list[EventType]:
    return [e.event_type for e in await oq.get_events(task_id)]


async def test_runs_sync_and_async_functions(oq: AsyncOmniQ) -> None:
    await oq.start_worker()
    sync_id = await oq.enqueue(tf.multiply, func_args=dict(x=5, y=10))
    async_id = await oq.enqueue(tf.async_add, func_args=dict(x=5, y=10))
    assert await oq.get_result(sync_id, timeout=5) == 50
    assert await oq.get_result(async_id, timeout=5) == 15


async def test_success_marks_task_success_and_emits_lifecycle_events(oq: AsyncOmniQ) -> None:
    await oq.start_worker()
    tid = await oq.enqueue(tf.add, args=(1, 2))
    assert await oq.get_result(tid, timeout=5) == 3
    await oq.stop_worker()
    task = await oq.get_task(tid)
    assert task is not None
    assert task.status is TaskStatus.SUCCESS
    assert task.attempts == 1
    assert await event_types(oq, tid) == [
        EventType.ENQUEUED,
        EventType.EXECUTING,
        EventType.COMPLETED,
    ]


async def test_failing_task_retries_then_succeeds(oq: AsyncOmniQ) -> None:
    await oq.start_worker()
    tid = await oq.enqueue(tf.fail_times, args=("pay", 2), max_retries=3, retry_delay=0.01)
    assert await oq.get_result(tid, timeout=5) == "pay ok after 3"
    types = await event_types(oq, tid)
    assert types.count(EventType.RETRY) == 2
    assert types.count(EventType.ERROR) == 2


async def test_retries_end_in_dead_and_get_result_raises_with_remote_error(oq: AsyncOmniQ) -> None:
    await oq.start_worker()
    tid = await oq.enqueue(tf.boom, args=("kaput",), max_retries=2, retry_delay=0.01)
    with pytest.raises(TaskFailedError) as info:
        await oq.get_result(tid, timeout=5)
    assert info.value.error_type == "ValueError"
    assert info.value.error_message == "kaput"
    assert "ValueError: kaput" in (info.value.traceback or "")
    task = await oq.get_task(tid)
    assert task is not None
    assert task.status is TaskStatus.DEAD
    assert task.attempts == 3
    assert [t.id for t in await oq.list_dead()] == [tid]
    assert (await event_types(oq, tid))[-1] is EventType.DEAD


async def test_retry_on_limits_which_errors_are_retried(oq: AsyncOmniQ) -> None:
    await oq.start_worker()
    tid = await oq.enqueue(
        tf.raise_type_error, max_retries=5, retry_delay=0.01, retry_on=[ValueError]
    )
    with pytest.raises(TaskFailedError):
        await oq.get_result(tid, timeout=5)
    task = await oq.get_task(tid)
    assert task is not None
    assert task.attempts == 1


async def test_dead_task_can_be_requeued_and_run_again(oq: AsyncOmniQ) -> None:
    await oq.start_worker()
    tid = await oq.enqueue(tf.fail_times, args=("requeue", 1), max_retries=0)
    with pytest.raises(TaskFailedError):
        await oq.get_result(tid, timeout=5)
    await oq.result_store.delete(tid)
    assert await oq.requeue(tid) is True
    assert await oq.get_result(tid, timeout=5) == "requeue ok after 2"


async def test_async_task_past_its_timeout_is_cancelled_and_reported(oq: AsyncOmniQ) -> None:
    await oq.start_worker()
    tid = await oq.enqueue(tf.async_sleep, args=(10,), timeout=0.05, max_retries=0)
    with pytest.raises(TaskFailedError) as info:
        await oq.get_result(tid, timeout=5)
    assert info.value.error_type == "TaskTimeout"
    assert EventType.TIMEOUT in await event_types(oq, tid)


async def test_sync_task_past_its_timeout_is_reported(oq: AsyncOmniQ) -> None:
    await oq.start_worker()
    tid = await oq.enqueue(tf.sync_sleep, args=(0.5,), timeout=0.05, max_retries=0)
    with pytest.raises(TaskFailedError) as info:
        await oq.get_result(tid, timeout=5)
    assert info.value.error_type == "TaskTimeout"


async def test_task_raising_its_own_timeout_error_is_not_mistaken_for_a_timeout(
    oq: AsyncOmniQ,
) -> None:
    def raises_timeout() -> None:
        raise TimeoutError("socket timed out")

    await oq.start_worker()
    tid = await oq.enqueue(raises_timeout, timeout=5, max_retries=0)
    with pytest.raises(TaskFailedError) as info:
        await oq.get_result(tid, timeout=5)
    assert info.value.error_type == "TimeoutError"


async def test_pending_task_cancelled_before_it_runs_never_runs(oq: AsyncOmniQ) -> None:
    tid = await oq.enqueue(tf.record, args=("cancelled",), run_in=0.2)
    assert await oq.cancel(tid) is True
    await oq.start_worker()
    with pytest.raises(TaskCancelledError):
        await oq.get_result(tid, timeout=5)
    await asyncio.sleep(0.3)
    assert tf.calls["cancelled"] == 0


async def test_running_task_is_cancelled_at_its_next_heartbeat(oq: AsyncOmniQ) -> None:
    await oq.start_worker(heartbeat_interval=0.02)
    tid = await oq.enqueue(tf.async_sleep, args=(30,))
    for _ in range(200):
        task = await oq.get_task(tid)
        if task is not None and task.status is TaskStatus.RUNNING:
            break
        await asyncio.sleep(0.01)
    assert await oq.cancel(tid) is True
    with pytest.raises(TaskCancelledError):
        await oq.get_result(tid, timeout=5)
    task = await oq.get_task(tid)
    assert task is not None
    assert task.status is TaskStatus.CANCELLED


async def test_task_past_its_ttl_expires_instead_of_running(oq: AsyncOmniQ) -> None:
    tid = await oq.enqueue(tf.record, args=("late",), ttl=0.05)
    await asyncio.sleep(0.1)
    await oq.start_worker()
    with pytest.raises(TaskExpiredError):
        await oq.get_result(tid, timeout=5)
    assert tf.calls["late"] == 0
    task = await oq.get_task(tid)
    assert task is not None
    assert task.status is TaskStatus.EXPIRED
    assert EventType.EXPIRED in await event_types(oq, tid)


async def test_unknown_function_goes_dead_at_once_and_the_worker_carries_on(oq: AsyncOmniQ) -> None:
    await oq.start_worker()
    bad = await oq.task_queue.enqueue(
        Task(func="tests.tasks_fixture:no_such_function", max_retries=5)
    )
    good = await oq.enqueue(tf.add, args=(2, 2))
    with pytest.raises(TaskFailedError) as info:
        await oq.get_result(bad, timeout=5)
    assert info.value.error_type == "FunctionNotFound"
    assert "no_such_function" in (info.value.error_message or "")
    assert await oq.get_result(good, timeout=5) == 4
    task = await oq.get_task(bad)
    assert task is not None
    assert task.attempts == 1


async def test_concurrency_bounds_tasks_running_at_once(oq: AsyncOmniQ) -> None:
    await oq.start_worker(concurrency=3)
    ids = await oq.enqueue_many(
        [{"func": tf.track_concurrency, "args": (0.02,)} for _ in range(12)]
    )
    for tid in ids:
        await oq.get_result(tid, timeout=5)
    assert tf.peak_running == 3


async def test_worker_serves_queues_in_the_order_given() -> None:
    queue = AsyncMemoryQueue(queues=["high", "medium", "low"])
    results = AsyncMemoryResultStorage()
    tf.reset()
    for name in ("low", "medium", "high", "low", "high"):
        await queue.enqueue(tf.note, args=(name,), queue_name=name)
    async with AsyncWorker(queue, results, concurrency=1) as worker:
        for _ in range(500):
            if len(tf.order) == 5:
                break
            await asyncio.sleep(0.01)
    assert tf.order == ["high", "high", "medium", "low", "low"]
    assert worker.stats.succeeded == 5


async def test_expired_lease_of_a_crashed_worker_is_recovered_and_the_task_completes() -> None:
    queue = AsyncMemoryQueue(lease_timeout=0.1)
    results = AsyncMemoryResultStorage()
    tid = await queue.enqueue(tf.add, args=(20, 22))
    crashed = await queue.dequeue(worker_id="crashed")  # claims, then never finishes
    assert crashed is not None
    async with AsyncWorker(queue, results, recover_interval=0.05, lease=1.0):
        result = await results.wait(tid, timeout=5)
    assert result is not None
    assert result.result == 42
    assert result.attempts == 2
    assert await queue.complete(tid, crashed.claim or "") is False  # the zombie is refused


async def test_graceful_stop_lets_running_tasks_finish() -> None:
    queue = AsyncMemoryQueue()
    results = AsyncMemoryResultStorage()
    worker = AsyncWorker(queue, results)
    await worker.start()
    tid = await queue.enqueue(tf.async_sleep, args=(0.1,))
    await asyncio.sleep(0.03)
    await worker.stop(timeout=5)
    result = await results.get(tid)
    assert result is not None
    assert result.status is ResultStatus.SUCCESS


async def test_stop_past_the_grace_period_hands_running_tasks_back() -> None:
    queue = AsyncMemoryQueue()
    results = AsyncMemoryResultStorage()
    worker = AsyncWorker(queue, results)
    await worker.start()
    tid = await queue.enqueue(tf.async_sleep, args=(30,))
    for _ in range(100):
        task = await queue.get_task(tid)
        if task is not None and task.status is TaskStatus.RUNNING:
            break
        await asyncio.sleep(0.01)
    await worker.stop(timeout=0.05)
    task = await queue.get_task(tid)
    assert task is not None
    assert task.status is TaskStatus.PENDING
    assert task.attempts == 0  # a hand-back is not a failed attempt
    assert await queue.dequeue() is not None  # another worker takes it at once


async def test_stop_returns_promptly_when_idle() -> None:
    queue = AsyncMemoryQueue()
    worker = AsyncWorker(queue, AsyncMemoryResultStorage(), idle_timeout=60)
    await worker.start()
    await asyncio.sleep(0.02)
    await asyncio.wait_for(worker.stop(), timeout=2)


async def test_worker_stats_count_outcomes(oq: AsyncOmniQ) -> None:
    await oq.start_worker()
    ok = await oq.enqueue(tf.add, args=(1, 1))
    bad = await oq.enqueue(tf.boom, max_retries=0)
    await oq.get_result(ok, timeout=5)
    with pytest.raises(TaskFailedError):
        await oq.get_result(bad, timeout=5)
    assert oq.worker is not None
    stats = oq.worker.get_stats()
    assert stats["succeeded"] == 1
    assert stats["dead"] == 1
    assert stats["processed"] == 2
    assert stats["running"] == 0
    assert stats["uptime"] >= 0


async def test_result_ttl_is_applied_to_stored_results(oq: AsyncOmniQ) -> None:
    await oq.start_worker()
    tid = await oq.enqueue(tf.add, args=(1, 1), result_ttl=timedelta(seconds=0.1))
    assert await oq.get_result(tid, timeout=5) == 2
    await asyncio.sleep(0.15)
    assert await oq.get_result(tid, timeout=0) is None


async def test_many_tasks_all_complete_exactly_once(oq: AsyncOmniQ) -> None:
    await oq.start_worker(concurrency=50)
    ids = await oq.enqueue_many([{"func": tf.record, "args": (f"k{i}",)} for i in range(2000)])
    values = await asyncio.gather(*(oq.get_result(t, timeout=10) for t in ids))
    assert values == [f"k{i}" for i in range(2000)]
    assert all(tf.calls[f"k{i}"] == 1 for i in range(2000))


class FlakyResultStorage(AsyncMemoryResultStorage):
    """Refuses its first ``fail_first`` writes, as a result store that is briefly unreachable."""

    def __init__(self, fail_first: int) -> None:
        super().__init__()
        self.failures_left = fail_first

    async def _set_many(self, items: list[tuple[TaskResult, bytes]]) -> None:
        if self.failures_left > 0:
            self.failures_left -= 1
            raise ConnectionError("result store unreachable")
        await super()._set_many(items)


async def test_unreachable_result_store_loses_no_failure_the_task_comes_back_after_its_lease() -> (
    None
):
    queue = AsyncMemoryQueue(lease_timeout=0.2)
    results = FlakyResultStorage(fail_first=1)
    tid = await queue.enqueue(tf.boom, args=("late result",), max_retries=0)
    async with AsyncWorker(queue, results, recover_interval=0.05):
        result = await results.wait(tid, timeout=5)
    assert result is not None
    assert result.status is ResultStatus.ERROR
    task = await queue.get_task(tid)
    assert task is not None
    assert task.status is TaskStatus.DEAD


async def test_unreachable_result_store_delays_successes_but_loses_none() -> None:
    queue = AsyncMemoryQueue()
    results = FlakyResultStorage(fail_first=2)
    tid = await queue.enqueue(tf.add, args=(3, 4))
    async with AsyncWorker(queue, results):
        result = await results.wait(tid, timeout=5)
    assert result is not None
    assert result.result == 7
