"""taskiq with taskiq-nats's ``PullBasedJetStreamBroker`` (a JetStream stream and one durable
pull consumer shared by the workers, acknowledged delivery: the same guarantees OmniQ's NATS
backend gives), worker started by ``taskiq worker --workers 1`` with its default
``--max-async-tasks``. Bulk: taskiq has no bulk API; concurrent ``kiq`` with
``asyncio.gather``. The stream's name contains "bench", so the harness wipes it between phases."""

from __future__ import annotations

import asyncio

from _driver import exec_module, main, nats_url, ticks
from record import record
from taskiq_nats import PullBasedJetStreamBroker

broker = PullBasedJetStreamBroker(
    servers=nats_url(),
    queue="bench_taskiq",
    stream_name="bench_taskiq",
    subject="bench_taskiq.tasks",
    durable="bench_taskiq",
)


@broker.task(task_name="noop")
async def noop(i: int) -> None:
    record(i)


def enqueue(backend: str, variant: str, mode: str, n: int) -> float | None:
    async def run() -> float:
        await broker.startup()
        loop = asyncio.get_running_loop()
        start = loop.time()
        if mode == "bulk":
            await asyncio.gather(*(noop.kiq(i) for i in range(n)))
        else:
            for i in ticks(mode, n):
                await noop.kiq(i)
        rate = n / (loop.time() - start)
        await broker.shutdown()
        return rate

    return asyncio.run(run())


def worker(backend: str, variant: str) -> None:
    exec_module(
        "taskiq", "worker", "taskiq_nats_driver:broker", "--workers", "1", "--log-level", "WARNING"
    )


if __name__ == "__main__":
    import taskiq_nats_driver

    main(("nats",), taskiq_nats_driver.enqueue, taskiq_nats_driver.worker)
