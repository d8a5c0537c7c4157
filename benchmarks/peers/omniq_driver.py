"""OmniQ as one more contender, driven exactly like the peers but run by the project's own
Python (``uv run``). ``--variant`` is the worker type (async, thread, process, gevent), optionally
with a concurrency (``async:100``); the worker is ``omniq worker``, with its default concurrency
unless one is given. Bulk: ``enqueue_many``."""

from __future__ import annotations

import asyncio

from _driver import exec_module, main, nats_url, pg_dsn, redis_url, sqlite_path, ticks

from benchmarks.peers.omniq_tasks import noop, noop_sync
from omniq import AsyncOmniQ
from omniq.backend import create_backend

PROJECT = "bench"


def url(backend: str) -> str:
    if backend == "redis":
        return redis_url()
    if backend == "postgres":
        return pg_dsn()
    if backend == "nats":
        return nats_url()
    return "sqlite:///" + sqlite_path("omniq.db")


def worker_type(variant: str) -> tuple[str, list[str]]:
    """``"async:100"`` -> ``("async", ["--concurrency", "100"])``; ``""`` -> the default type."""
    wtype, _, concurrency = variant.partition(":")
    return wtype or "async", ["--concurrency", concurrency] if concurrency else []


def enqueue(backend: str, variant: str, mode: str, n: int) -> float | None:
    func = noop if worker_type(variant)[0] == "async" else noop_sync

    async def run() -> float:
        async with AsyncOmniQ.from_backend(
            create_backend(url=url(backend), project_name=PROJECT)
        ) as oq:
            loop = asyncio.get_running_loop()
            start = loop.time()
            if mode == "bulk":
                await oq.enqueue_many([{"func": func, "args": (i,)} for i in range(n)])
            else:
                for i in ticks(mode, n):
                    await oq.enqueue(func, args=(i,))
            return n / (loop.time() - start)

    return asyncio.run(run())


def worker(backend: str, variant: str) -> None:
    wtype, options = worker_type(variant)
    exec_module(
        "omniq", "worker", "--url", url(backend), "--project", PROJECT,
        "--type", wtype, *options, "--log-level", "WARNING", "--include", "benchmarks.peers.omniq_tasks",
    )  # fmt: skip


if __name__ == "__main__":
    import omniq_driver

    main(("redis", "postgres", "sqlite", "nats"), omniq_driver.enqueue, omniq_driver.worker)
