"""taskiq with taskiq-redis's ``RedisStreamBroker`` (acknowledged delivery, as its docs recommend
over the list and pub/sub brokers), worker started by ``taskiq worker --workers 1`` with its
default ``--max-async-tasks``. Bulk: taskiq has no bulk API; concurrent ``kiq`` with
``asyncio.gather``."""

from __future__ import annotations

import asyncio

from _driver import exec_module, main, redis_url, ticks
from record import record
from taskiq_redis import RedisStreamBroker

broker = RedisStreamBroker(url=redis_url())


@broker.task(task_name="noop")
async def noop(i: int) -> None:
    record(i)


def enqueue(backend: str, variant: str, mode: str, n: int) -> float | None:
    async def run() -> float:
        await broker.startup()
        loop = asyncio.get_running_loop()
        start = loop.time()
        if mode == "bulk":
            await asyncio.gather(*(noop.kiq(i) for i in range(n)))
        else:
            for i in ticks(mode, n):
                await noop.kiq(i)
        rate = n / (loop.time() - start)
        await broker.shutdown()
        return rate

    return asyncio.run(run())


def worker(backend: str, variant: str) -> None:
    exec_module(
        "taskiq", "worker", "taskiq_driver:broker", "--workers", "1", "--log-level", "WARNING"
    )


if __name__ == "__main__":
    import taskiq_driver

    main(("redis",), taskiq_driver.enqueue, taskiq_driver.worker)
