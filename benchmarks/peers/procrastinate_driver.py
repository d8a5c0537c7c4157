"""procrastinate on PostgreSQL (psycopg 3 connector), worker with its defaults (concurrency 1,
LISTEN/NOTIFY on). The schema is applied before the timed enqueue. Bulk:
``Task.batch_defer_async`` (one statement)."""

from __future__ import annotations

import asyncio

from _driver import main, pg_dsn, ticks
from procrastinate import App, PsycopgConnector
from record import record

app = App(connector=PsycopgConnector(conninfo=pg_dsn()))


@app.task(name="noop")
async def noop(i: int) -> None:
    record(i)


def enqueue(backend: str, variant: str, mode: str, n: int) -> float | None:
    async def run() -> float:
        async with app.open_async():
            found = await app.connector.execute_query_one_async(
                "SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS found"
            )
            if not found["found"]:  # the schema is applied once per fresh database
                await app.schema_manager.apply_schema_async()
            loop = asyncio.get_running_loop()
            start = loop.time()
            if mode == "bulk":
                await noop.batch_defer_async(*({"i": i} for i in range(n)))
            else:
                for i in ticks(mode, n):
                    await noop.defer_async(i=i)
            return n / (loop.time() - start)

    return asyncio.run(run())


def worker(backend: str, variant: str) -> None:
    async def run() -> None:
        async with app.open_async():
            await app.run_worker_async()  # until SIGTERM

    asyncio.run(run())


if __name__ == "__main__":
    import procrastinate_driver

    main(("postgres",), procrastinate_driver.enqueue, procrastinate_driver.worker)
