"""Huey on Redis (``RedisHuey``) or SQLite (``SqliteHuey``), consumer with its defaults (one
worker thread). No bulk enqueue."""

from __future__ import annotations

import os

from _driver import exec_module, main, redis_url, sqlite_path, ticks, timed
from huey import RedisHuey, SqliteHuey
from record import record

# the instance is built at import (the consumer imports it), so the backend comes from the
# environment the harness sets, not from --backend
if os.environ.get("OMNIQ_BENCH_BACKEND") == "sqlite":
    huey = SqliteHuey("bench", filename=sqlite_path("huey.db"))
else:
    huey = RedisHuey("bench", url=redis_url())


@huey.task()
def noop(i: int) -> None:
    record(i)


def enqueue(backend: str, variant: str, mode: str, n: int) -> float | None:
    rate = timed(n, lambda: [noop(i) for i in ticks(mode, n)])
    return None if mode == "bulk" else rate


def worker(backend: str, variant: str) -> None:
    exec_module("huey.bin.huey_consumer", "huey_driver.huey", "--logfile", os.devnull)


if __name__ == "__main__":
    import huey_driver

    main(("redis", "sqlite"), huey_driver.enqueue, huey_driver.worker)
