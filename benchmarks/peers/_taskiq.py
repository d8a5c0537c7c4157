"""What the two taskiq drivers share (``taskiq_driver`` on Redis streams, ``taskiq_nats_driver``
on a JetStream pull consumer): the no-op task, the enqueue loop and the worker command; each
driver only builds its broker. Standard library and taskiq only: this module runs inside both
peers' virtualenvs."""

from __future__ import annotations

import asyncio
from typing import Any

from _driver import Enqueue, Worker, exec_module, ticks
from record import record


def taskiq_driver(broker: Any, module: str) -> tuple[Enqueue, Worker]:
    """The no-op task registered on ``broker`` (the module-level broker of ``module``, which
    ``taskiq worker module:broker`` imports), and the driver's enqueue and worker functions.
    Bulk: taskiq has no bulk API; concurrent ``kiq`` with ``asyncio.gather``."""

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
            "taskiq", "worker", f"{module}:broker", "--workers", "1", "--log-level", "WARNING"
        )

    return enqueue, worker
