"""Background loops end when asked to, even when a client library swallowed the cancellation.

redis-py swallows a cancellation that lands inside its timeout handling; ``asyncio.run`` cancels
each task left at exit once and then waits for all of them, so a loop that lost that one cancel
kept a script from exiting (a CI run of the exit tests hung that way in the scheduler).
"""

from __future__ import annotations

import asyncio
import contextlib

from omniq._aio import cancel_and_wait, idle
from omniq.queue.scheduler import AsyncScheduler
from omniq.storage.memory import AsyncMemoryQueue


async def _swallowing_call() -> None:
    with contextlib.suppress(asyncio.CancelledError):  # what redis-py does at the wrong moment
        await asyncio.sleep(10)


async def test_a_loop_that_lost_its_cancel_ends_at_its_next_idle() -> None:
    turns = 0

    async def loop() -> None:
        nonlocal turns
        while True:
            turns += 1
            await _swallowing_call()
            await idle(0.01)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.05)
    task.cancel()
    try:
        done, _ = await asyncio.wait({task}, timeout=5)
    finally:
        await cancel_and_wait(task)

    assert task in done
    assert task.cancelled()
    assert turns == 1


async def test_the_scheduler_ends_when_its_tick_swallowed_the_cancel() -> None:
    queue = AsyncMemoryQueue()
    scheduler = AsyncScheduler(queue, max_sleep=0.01)
    ticking = asyncio.Event()

    async def tick() -> list[str]:
        if not ticking.is_set():  # the first tick loses the cancel; later ones are quick
            ticking.set()
            await _swallowing_call()
        return []

    scheduler.tick = tick  # type: ignore[method-assign]
    runner = asyncio.create_task(scheduler.run())
    await ticking.wait()
    runner.cancel()
    try:
        done, _ = await asyncio.wait({runner}, timeout=5)
    finally:
        await cancel_and_wait(runner)  # a failing run still ends

    assert runner in done
    assert runner.cancelled()


async def test_a_result_wait_cancelled_as_its_result_lands_ends_cancelled() -> None:
    # 3.11's wait_for returned the result when the cancel landed in the same step, and the
    # cancelled caller ran on; the wait is bounded by asyncio.timeout instead
    from omniq.storage.memory.stores import AsyncMemoryResultStorage

    store = AsyncMemoryResultStorage()
    call = asyncio.create_task(store._wait_for("t1", 30))
    await asyncio.sleep(0.01)
    assert not call.done()
    store._waiters["t1"][0].set_result(None)
    call.cancel()
    done, _ = await asyncio.wait({call}, timeout=5)
    assert call in done
    assert call.cancelled()
