"""RQ on Redis. ``--variant simple`` (SimpleWorker: jobs run in the worker process, RQ's advice
for throughput) or ``fork`` (the default Worker: one fork per job, the isolation RQ is known for).
Bulk: ``Queue.enqueue_many`` (one pipeline)."""

from __future__ import annotations

from _driver import main, redis_url, ticks, timed
from record import record
from redis import Redis
from rq import Queue, SimpleWorker, Worker


def noop(i: int) -> None:
    record(i)


def _queue() -> Queue:
    return Queue("default", connection=Redis.from_url(redis_url()))


def enqueue(backend: str, variant: str, mode: str, n: int) -> float | None:
    queue = _queue()
    if mode == "bulk":
        return timed(
            n,
            lambda: queue.enqueue_many([Queue.prepare_data(noop, args=(i,)) for i in range(n)]),
        )
    return timed(n, lambda: [queue.enqueue(noop, i) for i in ticks(mode, n)])


def worker(backend: str, variant: str) -> None:
    queue = _queue()
    cls = {"simple": SimpleWorker, "fork": Worker}[variant or "simple"]
    cls([queue], connection=queue.connection).work(logging_level="WARNING")


if __name__ == "__main__":
    import rq_driver  # tasks are referenced by module path, which must not be __main__

    main(("redis",), rq_driver.enqueue, rq_driver.worker)
