"""The buffered EventLogger: a slow or failing event store never slows or fails a task."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from omniq import AsyncOmniQ
from omniq.events import EventLogger
from omniq.models import EventType, TaskEvent
from omniq.storage.memory import AsyncMemoryEventStorage
from tests import tasks_fixture as tf


class BrokenEventStorage(AsyncMemoryEventStorage):
    async def _log_events(self, events: list[TaskEvent]) -> None:
        raise ConnectionError("event store is down")


class SlowEventStorage(AsyncMemoryEventStorage):
    async def _log_events(self, events: list[TaskEvent]) -> None:
        await asyncio.sleep(0.2)
        await super()._log_events(events)


def event(i: int) -> TaskEvent:
    return TaskEvent(task_id=f"t{i}", event_type=EventType.ENQUEUED)


async def test_events_are_written_in_the_background_and_flushed_on_close() -> None:
    storage = AsyncMemoryEventStorage()
    logger = EventLogger(storage)
    for i in range(50):
        logger.emit(event(i))
    await logger.close()
    assert len(await storage.get_events(limit=1000)) == 50
    assert logger.stats.written == 50
    assert logger.stats.dropped == 0


async def test_a_full_buffer_drops_and_counts_instead_of_blocking() -> None:
    storage = SlowEventStorage()
    logger = EventLogger(storage, max_buffer=10)
    for i in range(25):
        logger.emit(event(i))
    assert logger.stats.dropped == 15
    await logger.close()
    assert logger.stats.written == 10


async def test_failing_event_storage_never_fails_tasks() -> None:
    storage = BrokenEventStorage()
    async with AsyncOmniQ(event_store=storage) as oq:
        await oq.start_worker()
        tid = await oq.enqueue(tf.add, args=(1, 2))
        assert await oq.get_result(tid, timeout=5) == 3
        assert oq.event_logger is not None
        await oq.event_logger.flush()
        assert oq.event_logger.stats.failed_batches >= 1
        assert oq.event_logger.stats.written == 0


async def test_slow_event_storage_does_not_slow_tasks_down() -> None:
    storage = SlowEventStorage()
    async with AsyncOmniQ(event_store=storage) as oq:
        await oq.start_worker()
        ids = await oq.enqueue_many([{"func": tf.add, "args": (i, i)} for i in range(100)])
        values: Sequence[int] = await asyncio.wait_for(
            asyncio.gather(*(oq.get_result(t, timeout=5) for t in ids)), timeout=5
        )
        assert list(values) == [2 * i for i in range(100)]


async def test_no_event_storage_means_no_event_work() -> None:
    async with AsyncOmniQ() as oq:
        assert oq.event_logger is None
        assert oq.task_queue.event_logger is None
