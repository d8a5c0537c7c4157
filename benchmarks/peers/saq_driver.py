"""SAQ on Redis or PostgreSQL, with its default worker (``concurrency=10``). Bulk: SAQ has no
bulk API; its own ``Queue.map`` enqueues concurrently with ``asyncio.gather``, which is what the
bulk column measures here."""

from __future__ import annotations

import asyncio
from typing import Any

from _driver import main, pg_dsn, redis_url, ticks
from record import record
from saq import Queue, Worker


async def noop(ctx: dict[str, Any], *, i: int) -> None:
    record(i)


def _queue(backend: str) -> Queue:
    return Queue.from_url(redis_url() if backend == "redis" else pg_dsn())


def enqueue(backend: str, variant: str, mode: str, n: int) -> float | None:
    async def run() -> float:
        queue = _queue(backend)
        await queue.connect()
        loop = asyncio.get_running_loop()
        start = loop.time()
        if mode == "bulk":
            await asyncio.gather(*(queue.enqueue("noop", i=i) for i in range(n)))
        else:
            for i in ticks(mode, n):
                await queue.enqueue("noop", i=i)
        rate = n / (loop.time() - start)
        await queue.disconnect()
        return rate

    return asyncio.run(run())


def worker(backend: str, variant: str) -> None:
    async def run() -> None:  # as ``saq.worker.start`` (the ``saq`` command) does
        queue = _queue(backend)
        await queue.connect()
        try:
            await Worker(queue, functions=[noop]).start()  # until SIGTERM
        finally:
            await queue.disconnect()

    asyncio.run(run())


if __name__ == "__main__":
    import saq_driver

    main(("redis", "postgres"), saq_driver.enqueue, saq_driver.worker)
