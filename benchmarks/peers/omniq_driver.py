"""OmniQ as one more contender, driven exactly like the peers but run by the project's own
Python (``uv run``). ``--variant`` is the worker type (async, thread, process, gevent); the worker
is ``omniq worker`` with its default concurrency. Bulk: ``enqueue_many``."""

from __future__ import annotations

import asyncio

from _driver import exec_module, main, pg_dsn, redis_url, sqlite_path

from benchmarks.peers.omniq_tasks import noop, noop_sync
from omniq import AsyncOmniQ
from omniq.backend import create_backend

PROJECT = "bench"


def url(backend: str) -> str:
    if backend == "redis":
        return redis_url()
    if backend == "postgres":
        return pg_dsn()
    return "sqlite:///" + sqlite_path("omniq.db")


def enqueue(backend: str, variant: str, mode: str, n: int) -> float | None:
    func = noop if variant in ("", "async") else noop_sync

    async def run() -> float:
        async with AsyncOmniQ.from_backend(
            create_backend(url=url(backend), project_name=PROJECT)
        ) as oq:
            loop = asyncio.get_running_loop()
            start = loop.time()
            if mode == "bulk":
                await oq.enqueue_many([{"func": func, "args": (i,)} for i in range(n)])
            else:
                for i in range(n):
                    await oq.enqueue(func, args=(i,))
            return n / (loop.time() - start)

    return asyncio.run(run())


def worker(backend: str, variant: str) -> None:
    exec_module(
        "omniq", "worker", "--url", url(backend), "--project", PROJECT,
        "--type", variant or "async", "--log-level", "WARNING",
    )  # fmt: skip


if __name__ == "__main__":
    import omniq_driver

    main(("redis", "postgres", "sqlite"), omniq_driver.enqueue, omniq_driver.worker)
