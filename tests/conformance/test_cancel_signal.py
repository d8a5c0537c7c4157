"""The cancel signal (issue 14, item 4): where a backend offers it, the cancellation of a running
task is published through the store's own wake-up and a listener hears it at once, instead of the
worker finding it at its next heartbeat."""

from __future__ import annotations

import asyncio

import pytest

from omniq.storage.base import BaseTaskQueue, Capability

from .helpers import FUNC, WAKE_UP_BOUND, claim


def needs_signal(queue: BaseTaskQueue) -> None:
    if not queue.supports(Capability.CANCEL_SIGNAL):
        pytest.skip(f"{queue.backend_name} has no cancel signal: its workers use the heartbeat")


async def test_a_running_task_s_cancellation_reaches_a_listener(queue: BaseTaskQueue) -> None:
    needs_signal(queue)
    heard: asyncio.Queue[str] = asyncio.Queue()

    async def listen() -> None:
        async for task_id in queue.cancel_signals():
            heard.put_nowait(task_id)

    listener = asyncio.create_task(listen())
    try:
        await asyncio.sleep(0.3)  # the subscription is set up
        await queue.enqueue(FUNC, args=(1, 2))
        task = await claim(queue, lease=30)

        assert await queue.cancel(task.id) is True

        assert await asyncio.wait_for(heard.get(), WAKE_UP_BOUND) == task.id
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)


async def test_cancelling_a_pending_task_publishes_nothing(queue: BaseTaskQueue) -> None:
    needs_signal(queue)
    heard: asyncio.Queue[str] = asyncio.Queue()

    async def listen() -> None:
        async for task_id in queue.cancel_signals():
            heard.put_nowait(task_id)

    listener = asyncio.create_task(listen())
    try:
        await asyncio.sleep(0.3)
        pending = await queue.enqueue(FUNC, args=(1, 2))
        assert await queue.cancel(pending) is True
        await queue.enqueue(FUNC, args=(3, 4))
        running = await claim(queue, lease=30)
        assert await queue.cancel(running.id) is True

        # the first thing heard is the running task: the pending one needed no worker
        assert await asyncio.wait_for(heard.get(), WAKE_UP_BOUND) == running.id
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
