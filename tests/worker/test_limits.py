"""Rate limits and key concurrency limits in the worker (memory backend): a task held back is
deferred, not failed, and does not hold up other tasks. The cross-process figures (50/s over
20 s, three worker processes) are in tests/backends/test_rate_limit_processes.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

import omniq.workers._limits as worker_limits
from omniq import AsyncOmniQ, TaskStatus
from omniq.exceptions import ConfigError
from omniq.storage.memory import AsyncMemoryQueue
from omniq.workers._limits import LimitGate

starts: list[tuple[str, float]] = []
running: dict[str, int] = {}
peak: dict[str, int] = {}


def stamp(name: str) -> str:
    starts.append((name, time.monotonic()))
    return name


def limited_stamp(name: str) -> str:
    """Registered with a rate limit by a test (the registry is the process's)."""
    return stamp(name)


async def hold(key: str, seconds: float) -> None:
    running[key] = running.get(key, 0) + 1
    peak[key] = max(peak.get(key, 0), running[key])
    try:
        await asyncio.sleep(seconds)
    finally:
        running[key] -= 1


@pytest.fixture
async def oq() -> AsyncIterator[AsyncOmniQ]:
    starts.clear()
    running.clear()
    peak.clear()
    app = AsyncOmniQ(task_queue=AsyncMemoryQueue(lease_timeout=5.0))
    async with app:
        yield app


async def test_a_rate_limited_task_is_deferred_not_failed_and_others_flow(oq: AsyncOmniQ) -> None:
    limited = oq.task(rate_limit="5/s")(limited_stamp)  # room for 5 at once, then one per 0.2 s
    ids = [await limited.enqueue("limited") for _ in range(10)]
    await oq.start_worker(concurrency=4)
    await asyncio.sleep(0.1)
    other = await oq.enqueue(stamp, args=("other",))
    for task_id in [*ids, other]:
        await oq.get_result(task_id, timeout=10)

    times = sorted(t for name, t in starts if name == "limited")
    # 5 at once, then 5 more one token (0.2 s) apart: the last no earlier than 0.9 s after the first
    assert times[-1] - times[0] >= 0.9
    for later, earlier in zip(times[5:], times[4:], strict=False):
        assert later - earlier >= 0.15
    # the unrelated task did not wait behind the limited ones
    [other_start] = [t for name, t in starts if name == "other"]
    assert other_start < times[-1]
    for task_id in ids:
        task = await oq.get_task(task_id)
        assert task is not None
        assert task.status is TaskStatus.SUCCESS
        assert task.attempts == 1  # held back, not failed: no attempt was counted


async def test_a_concurrency_key_admits_at_most_its_limit(oq: AsyncOmniQ) -> None:
    task = oq.task(concurrency_key=lambda key, seconds: key, concurrency_limit=2)(hold)
    ids = [await task.enqueue("user:1", 0.15) for _ in range(6)]
    ids += [await task.enqueue("user:2", 0.15) for _ in range(2)]
    await oq.start_worker(concurrency=8)
    for task_id in ids:
        await oq.get_result(task_id, timeout=10)

    assert peak == {"user:1": 2, "user:2": 2}
    usage = await oq.task_queue.limit_usage()
    assert {(s.key, s.limit, s.running) for s in usage.slots} == {
        ("user:1", 2, 0),
        ("user:2", 2, 0),
    }


async def test_a_queue_rate_limit_of_the_worker(oq: AsyncOmniQ) -> None:
    ids = [await oq.enqueue(stamp, args=("q",)) for _ in range(4)]
    await oq.start_worker(concurrency=4, rate_limits={"default": "2/s"})
    for task_id in ids:
        await oq.get_result(task_id, timeout=10)
    times = sorted(t for _, t in starts)
    assert times[-1] - times[0] >= 0.9  # 2 at once, then 0.5 s apart


async def test_enqueue_time_limits_and_their_errors(oq: AsyncOmniQ) -> None:
    task_id = await oq.enqueue(stamp, args=("x",), rate_limit="10/m", concurrency_key="k")
    stored = await oq.get_task(task_id)
    assert stored is not None
    assert (stored.rate_limit, stored.concurrency_key, stored.concurrency_limit) == ("10/m", "k", 1)
    with pytest.raises(ConfigError, match="'10 per minute'"):
        await oq.enqueue(stamp, args=("x",), rate_limit="10 per minute")
    with pytest.raises(ConfigError, match="concurrency_limit"):
        await oq.enqueue(stamp, args=("x",), concurrency_limit=2)
    with pytest.raises(ConfigError, match="'5/fortnight'"):
        oq.task(rate_limit="5/fortnight")
    with pytest.raises(ConfigError, match=r"concurrency_limit.*0"):
        oq.task(concurrency_key="k", concurrency_limit=0)
    with pytest.raises(ConfigError, match="'often'"):
        await oq.start_worker(rate_limits={"default": "often"})


async def test_a_worker_forgets_the_keys_whose_time_has_passed() -> None:
    from omniq.models.task import Task
    from omniq.workers._limits import LimitGate

    async with AsyncMemoryQueue() as queue:
        gate = LimitGate(queue, {})
        past = time.time() - 1
        gate._horizon.update({f"user:{i}": past for i in range(5000)})
        gate._empty_until.update({f"user:{i}": past for i in range(5000)})
        task = Task(func="tests.worker.test_limits:stamp", rate_limit="5/s", claim="c")
        assert await gate.admit(task, lease=5) is None
        assert len(gate._horizon) == 0
        assert len(gate._empty_until) == 0


async def test_the_worker_upkeep_sweeps_spent_limit_records(oq: AsyncOmniQ) -> None:
    """A worker deletes the limit records that hold nothing (here at its first upkeep turn)."""
    queue = oq.task_queue
    assert isinstance(queue, AsyncMemoryQueue)
    assert await queue.acquire_slot("user:gone", "h1", 1, 30) is True
    await queue.release_slot("user:gone", "h1")
    assert [s.key for s in (await queue.limit_usage()).slots] == ["user:gone"]

    await oq.start_worker(concurrency=1)
    for _ in range(250):  # up to 5 s: the store is read, there is no event to wait on
        if not (await queue.limit_usage()).slots:
            break
        await asyncio.sleep(0.02)
    assert (await queue.limit_usage()).slots == []


async def test_a_slot_freed_in_this_process_wakes_a_task_waiting_for_it(
    oq: AsyncOmniQ, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tasks refused a slot used to come back only after SLOT_RETRY (0.1-0.2 s) whatever
    happened meanwhile; a slot released by a task of the same worker now wakes one at once.
    SLOT_RETRY is made 60 s here, so only the wake can end this test in time."""
    monkeypatch.setattr(worker_limits, "SLOT_RETRY", 60.0)
    task = oq.task(concurrency_key="one-at-a-time", concurrency_limit=1)(hold)
    # the second waits in the worker (as many wait per key as its limit), woken by the first
    ids = [await task.enqueue("one-at-a-time", 0.05) for _ in range(2)]
    await oq.start_worker(concurrency=4)
    async with asyncio.timeout(20):
        for task_id in ids:
            await oq.get_result(task_id, timeout=20)
    assert peak == {"one-at-a-time": 1}
    for task_id in ids:
        stored = await oq.get_task(task_id)
        assert stored is not None
        assert stored.attempts == 1


async def test_the_gate_wakes_one_waiter_per_released_slot() -> None:
    queue = AsyncMemoryQueue()
    gate = LimitGate(queue, {}, max_waiting=2)
    ids = [await queue.enqueue(stamp, args=("g",), concurrency_key="k") for _ in range(3)]
    claimed = [await queue.dequeue(timeout=1) for _ in ids]
    first, second, third = [task for task in claimed if task is not None]
    assert await gate.admit(first, 30) is None
    waiting = asyncio.ensure_future(gate.admit(second, 30))
    await asyncio.sleep(0.01)
    # the key's limit (1) is the number of tasks that wait for it here: the third is handed back
    assert await gate.admit(third, 30) is not None
    assert not waiting.done()
    await gate.release(first.id)
    assert await asyncio.wait_for(waiting, 5) is None  # woken, and given the slot
    assert set(gate.held) == {second.id}
    await queue.close()


async def test_a_key_callable_that_returns_no_string_is_named_in_the_error(
    oq: AsyncOmniQ,
) -> None:
    def user_key(user_id: int, seconds: float) -> str:
        return user_id  # type: ignore[return-value]  # the mistake under test

    task = oq.task(concurrency_key=user_key)(hold)
    with pytest.raises(ConfigError, match=r"concurrency_key <function .*user_key.* returned .* 42"):
        await task.enqueue(42, 0.0)
