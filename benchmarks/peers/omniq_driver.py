"""OmniQ as one more contender, driven exactly like the peers but run by the project's own
Python (``uv run``). ``--variant`` is the worker type (async, thread, process, gevent), optionally
with a concurrency (``async:100``), and optionally with the API the one-by-one enqueue goes
through (``async/sync``): ``async`` (default) ``await AsyncOmniQ.enqueue(func, ...)``, ``sync``
the blocking ``OmniQ.enqueue``, ``task`` ``await func.enqueue(...)`` of an ``@oq.task`` and
``task-sync`` the same on an ``OmniQ`` app. The worker is ``omniq worker``, with its default
concurrency unless one is given. Bulk: ``enqueue_many``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from _driver import exec_module, main, nats_url, pg_dsn, redis_url, sqlite_path, ticks

from benchmarks.peers.omniq_tasks import noop, noop_sync
from omniq import AsyncOmniQ, OmniQ
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
    wtype, _, concurrency = variant.partition("/")[0].partition(":")
    return wtype or "async", ["--concurrency", concurrency] if concurrency else []


APIS = ("async", "sync", "task", "task-sync")


def enqueue(backend: str, variant: str, mode: str, n: int) -> float | None:
    func = noop if worker_type(variant)[0] == "async" else noop_sync
    api = variant.partition("/")[2] or "async"
    if api not in APIS:
        raise SystemExit(f"omniq_driver: unknown API {api!r} in --variant; use one of {APIS}")
    if api in ("sync", "task-sync"):
        return enqueue_sync(backend, func, api, mode, n)

    async def run() -> float:
        async with AsyncOmniQ.from_backend(
            create_backend(url=url(backend), project_name=PROJECT)
        ) as oq:
            task = oq.task()(func) if api == "task" else None
            loop = asyncio.get_running_loop()
            start = loop.time()
            if mode == "bulk":
                await oq.enqueue_many([{"func": func, "args": (i,)} for i in range(n)])
            elif task is not None:
                for i in ticks(mode, n):
                    await task.enqueue(i)
            else:
                for i in ticks(mode, n):
                    await oq.enqueue(func, args=(i,))
            return n / (loop.time() - start)

    return asyncio.run(run())


def enqueue_sync(backend: str, func: Callable[..., Any], api: str, mode: str, n: int) -> float:
    """The blocking API, as a script without an event loop uses it (``task-sync``: the function
    registered with ``@oq.task`` under its own reference, which the worker imports)."""
    with OmniQ.from_backend(create_backend(url=url(backend), project_name=PROJECT)) as oq:
        task = oq.task()(func) if api == "task-sync" else None
        start = time.perf_counter()
        if mode == "bulk":
            oq.enqueue_many([{"func": func, "args": (i,)} for i in range(n)])
        elif task is not None:
            for i in ticks(mode, n):
                task.enqueue(i)
        else:
            for i in ticks(mode, n):
                oq.enqueue(func, args=(i,))
        return n / (time.perf_counter() - start)


def worker(backend: str, variant: str) -> None:
    wtype, options = worker_type(variant)
    exec_module(
        "omniq", "worker", "--url", url(backend), "--project", PROJECT,
        "--type", wtype, *options, "--log-level", "WARNING", "--include", "benchmarks.peers.omniq_tasks",
    )  # fmt: skip


if __name__ == "__main__":
    import omniq_driver

    main(("redis", "postgres", "sqlite", "nats"), omniq_driver.enqueue, omniq_driver.worker)
