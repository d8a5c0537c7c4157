"""The raw client, no task queue at all: what one round trip per task costs on each broker, so
that a one-by-one enqueue rate can be read against the ceiling of the same machine in the same run
(issue 20, item 1: at least 90 % of it).

Per task, one write of a payload of a task's size (about 150 bytes), sequentially, the way a task
queue stores a task, with the client the broker's OmniQ backend uses:

- Redis: ``LPUSH`` (Huey's one command per task), redis-py: ``--variant async`` (its asyncio
  client) or ``sync`` (its blocking client);
- PostgreSQL: one ``INSERT`` of a row (id, payload) in autocommit, asyncpg (``async`` only: OmniQ
  has no blocking PostgreSQL client);
- SQLite: one ``INSERT`` in autocommit in WAL mode with ``synchronous=NORMAL`` (OmniQ's settings):
  ``sync`` straight on ``sqlite3``, ``async`` through aiosqlite (one thread hop per statement).

Runs in OmniQ's own environment (its extras bring these clients). Has no worker: only
``enqueue --mode single`` is meaningful.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid

from _driver import main, pg_dsn, redis_url, sqlite_path, timed

PAYLOAD = os.urandom(150)


def _ids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def redis_rate(variant: str, n: int) -> float:
    if variant == "sync":
        import redis

        client = redis.Redis.from_url(redis_url())
        client.ping()
        rate = timed(n, lambda: [client.lpush("raw:bench", PAYLOAD) for _ in range(n)])
        client.close()
        return rate

    async def run() -> float:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(redis_url())
        await client.ping()
        loop = asyncio.get_running_loop()
        start = loop.time()
        for _ in range(n):
            await client.lpush("raw:bench", PAYLOAD)
        rate = n / (loop.time() - start)
        await client.aclose()
        return rate

    return asyncio.run(run())


def postgres_rate(variant: str, n: int) -> float:
    if variant == "sync":
        raise SystemExit("raw_driver: no blocking PostgreSQL client in OmniQ's environment")

    async def run() -> float:
        import asyncpg  # type: ignore[import-untyped]

        conn = await asyncpg.connect(pg_dsn())
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS raw_bench (id text PRIMARY KEY, payload bytea NOT NULL)"
        )
        ids = _ids(n)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for task_id in ids:
            await conn.execute(
                "INSERT INTO raw_bench (id, payload) VALUES ($1, $2)", task_id, PAYLOAD
            )
        rate = n / (loop.time() - start)
        await conn.close()
        return rate

    return asyncio.run(run())


_SQLITE_SETUP = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "CREATE TABLE IF NOT EXISTS raw_bench (id TEXT PRIMARY KEY, payload BLOB NOT NULL)",
)
_SQLITE_INSERT = "INSERT INTO raw_bench (id, payload) VALUES (?, ?)"


def sqlite_rate(variant: str, n: int) -> float:
    path = sqlite_path("raw.db")
    ids = _ids(n)
    if variant == "sync":
        conn = sqlite3.connect(path, isolation_level=None)
        for statement in _SQLITE_SETUP:
            conn.execute(statement)
        rate = timed(n, lambda: [conn.execute(_SQLITE_INSERT, (i, PAYLOAD)) for i in ids])
        conn.close()
        return rate

    async def run() -> float:
        import aiosqlite

        async with aiosqlite.connect(path, isolation_level=None) as conn:
            for statement in _SQLITE_SETUP:
                await conn.execute(statement)
            loop = asyncio.get_running_loop()
            start = loop.time()
            for task_id in ids:
                await conn.execute(_SQLITE_INSERT, (task_id, PAYLOAD))
            return n / (loop.time() - start)

    return asyncio.run(run())


def enqueue(backend: str, variant: str, mode: str, n: int) -> float | None:
    if mode != "single":
        raise SystemExit(f"raw_driver: only --mode single is measured, got {mode!r}")
    rate = {"redis": redis_rate, "postgres": postgres_rate, "sqlite": sqlite_rate}[backend]
    return rate(variant or "async", n)


def worker(backend: str, variant: str) -> None:
    raise SystemExit("raw_driver: the raw client has no worker")


if __name__ == "__main__":
    import raw_driver

    main(("redis", "postgres", "sqlite"), raw_driver.enqueue, raw_driver.worker)
