"""The worker registry: what ``omniq info`` reads about the workers serving a project."""

from __future__ import annotations

import asyncio

from omniq._time import utcnow
from omniq.models.worker import WorkerInfo
from omniq.storage.base import BaseTaskQueue


def _info(worker_id: str, processed: int = 0) -> WorkerInfo:
    return WorkerInfo(
        worker_id=worker_id,
        worker_type="thread",
        hostname="host-a",
        pid=1234,
        queues=["high", "low"],
        concurrency=8,
        started_at=utcnow(),
        processed=processed,
    )


async def test_a_registered_worker_is_listed_with_its_stats(queue: BaseTaskQueue) -> None:
    await queue.register_worker(_info("w-1", processed=7), ttl=30)

    [found] = await queue.list_workers()

    assert found.worker_id == "w-1"
    assert found.worker_type == "thread"
    assert found.queues == ["high", "low"]
    assert found.processed == 7


async def test_registering_again_replaces_the_record(queue: BaseTaskQueue) -> None:
    await queue.register_worker(_info("w-1", processed=1), ttl=30)
    await queue.register_worker(_info("w-1", processed=2), ttl=30)

    found = await queue.list_workers()

    assert [(w.worker_id, w.processed) for w in found] == [("w-1", 2)]


async def test_a_worker_that_stops_renewing_disappears(queue: BaseTaskQueue) -> None:
    await queue.register_worker(_info("w-gone"), ttl=0.2)
    await queue.register_worker(_info("w-alive"), ttl=30)

    await asyncio.sleep(0.4)

    assert [w.worker_id for w in await queue.list_workers()] == ["w-alive"]


async def test_unregister_removes_the_worker(queue: BaseTaskQueue) -> None:
    await queue.register_worker(_info("w-1"), ttl=30)

    assert await queue.unregister_worker("w-1") is True
    assert await queue.unregister_worker("w-1") is False
    assert await queue.list_workers() == []
