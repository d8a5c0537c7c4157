"""pgqueuer on PostgreSQL (asyncpg driver), worker run as ``pgq run`` does with its defaults
(batch size 10). The schema is installed before the timed enqueue. Bulk: ``Queries.enqueue``
with lists (one statement)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import pgqueuer
from _driver import main, pg_dsn, ticks
from pgqueuer import AsyncpgDriver, Job, PgQueuer, Queries
from record import record


@contextlib.asynccontextmanager
async def create() -> AsyncIterator[PgQueuer]:
    """The factory ``pgq run`` would be given."""
    conn = await asyncpg.connect(pg_dsn())
    pgq = PgQueuer(AsyncpgDriver(conn))

    @pgq.entrypoint("noop")
    async def noop(job: Job) -> None:
        record(int(job.payload or b"0"))

    try:
        yield pgq
    finally:
        await conn.close()


def enqueue(backend: str, variant: str, mode: str, n: int) -> float | None:
    async def run() -> float:
        conn = await asyncpg.connect(pg_dsn())
        queries = Queries(AsyncpgDriver(conn))
        if not await conn.fetchval("SELECT to_regclass('pgqueuer') IS NOT NULL"):
            await queries.install()  # once per fresh database
        loop = asyncio.get_running_loop()
        start = loop.time()
        if mode == "bulk":
            await queries.enqueue(["noop"] * n, [str(i).encode() for i in range(n)], [0] * n)
        else:
            for i in ticks(mode, n):
                await queries.enqueue("noop", str(i).encode())
        rate = n / (loop.time() - start)
        await conn.close()
        return rate

    return asyncio.run(run())


def worker(backend: str, variant: str) -> None:
    asyncio.run(pgqueuer.run("pgqueuer_driver:create"))  # until SIGTERM


if __name__ == "__main__":
    import pgqueuer_driver

    main(("postgres",), pgqueuer_driver.enqueue, pgqueuer_driver.worker)
