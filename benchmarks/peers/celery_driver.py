"""Celery on Redis: prefork pool with one child per worker process (``-c 1``), results ignored,
and gossip, mingle and heartbeat off, as Celery's optimizing guide advises. No bulk enqueue."""

from __future__ import annotations

from _driver import exec_module, main, redis_url, ticks, timed
from celery import Celery
from record import record

app = Celery("celery_driver", broker=redis_url())
app.conf.task_ignore_result = True
app.conf.worker_hijack_root_logger = False


@app.task(name="noop")
def noop(i: int) -> None:
    record(i)


def enqueue(backend: str, variant: str, mode: str, n: int) -> float | None:
    rate = timed(n, lambda: [noop.delay(i) for i in ticks(mode, n)])
    return None if mode == "bulk" else rate


def worker(backend: str, variant: str) -> None:
    exec_module(
        "celery", "-A", "celery_driver", "worker", "--pool", variant or "prefork",
        "--concurrency", "1", "--without-gossip", "--without-mingle", "--without-heartbeat",
        "--loglevel", "WARNING",
    )  # fmt: skip


if __name__ == "__main__":
    import celery_driver

    main(("redis",), celery_driver.enqueue, celery_driver.worker)
