"""arq on Redis, with its defaults (``max_jobs=10``, ``poll_delay=0.5``). arq has no bulk
enqueue."""

from __future__ import annotations

import asyncio
from typing import Any

from _driver import main, redis_url, ticks
from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import Worker
from record import record


async def noop(ctx: dict[str, Any], i: int) -> None:
    record(i)


def enqueue(backend: str, variant: str, mode: str, n: int) -> float | None:
    async def run() -> float:
        pool = await create_pool(RedisSettings.from_dsn(redis_url()))
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in ticks(mode, n):
            await pool.enqueue_job("noop", i)
        rate = n / (loop.time() - start)
        await pool.aclose()
        return rate

    rate = asyncio.run(run())
    return None if mode == "bulk" else rate


def worker(backend: str, variant: str) -> None:
    Worker(functions=[noop], redis_settings=RedisSettings.from_dsn(redis_url())).run()


if __name__ == "__main__":
    import arq_driver

    main(("redis",), arq_driver.enqueue, arq_driver.worker)
