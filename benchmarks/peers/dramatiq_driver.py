"""Dramatiq on Redis (``RedisBroker``), one worker process with its default 8 threads
(``dramatiq --processes 1``). No bulk enqueue."""

from __future__ import annotations

import dramatiq
from _driver import exec_module, main, redis_url, ticks, timed
from dramatiq.brokers.redis import RedisBroker
from record import record

dramatiq.set_broker(RedisBroker(url=redis_url()))


@dramatiq.actor(queue_name="default")
def noop(i: int) -> None:
    record(i)


def enqueue(backend: str, variant: str, mode: str, n: int) -> float | None:
    rate = timed(n, lambda: [noop.send(i) for i in ticks(mode, n)])
    return None if mode == "bulk" else rate


def worker(backend: str, variant: str) -> None:
    exec_module("dramatiq", "dramatiq_driver", "--processes", "1")


if __name__ == "__main__":
    import dramatiq_driver

    main(("redis",), dramatiq_driver.enqueue, dramatiq_driver.worker)
