"""Throughput of each worker type in one process on the memory backend: N no-op tasks and M
CPU-bound tasks (a fixed amount of pure-Python work each).

    uv run python -m benchmarks.worker_types -n 10000 -m 2000

Gevent needs a monkey-patched process: measure it with
``python -m benchmarks.drain --url sqlite:////tmp/g.db --type gevent --sync-func``.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from benchmarks.noop import cpu_work, noop_sync
from omniq import AsyncOmniQ
from omniq.storage.memory import AsyncMemoryQueue


async def measure(
    worker_type: str, func: object, args: tuple[int, ...], n: int, concurrency: int
) -> float:
    async with AsyncOmniQ(
        task_queue=AsyncMemoryQueue(),
        worker_type=worker_type,
        worker_config={"max_workers": concurrency},
    ) as oq:
        ids = await oq.enqueue_many([{"func": func, "args": args} for _ in range(n)])
        start = time.perf_counter()
        await oq.start_worker()
        await asyncio.gather(*(oq.get_result(t, timeout=600) for t in ids))
        return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=10_000, help="no-op tasks")
    parser.add_argument("-m", type=int, default=2_000, help="CPU-bound tasks")
    args = parser.parse_args()
    print(f"{'type':<8} {'no-op/s':>10} {'cpu/s':>10}")
    for worker_type, concurrency in (("async", 100), ("thread", 10), ("process", 2)):
        noop_rate = asyncio.run(measure(worker_type, noop_sync, (1,), args.n, concurrency))
        cpu_rate = asyncio.run(measure(worker_type, cpu_work, (20_000,), args.m, concurrency))
        print(f"{worker_type:<8} {noop_rate:>10,.0f} {cpu_rate:>10,.0f}")


if __name__ == "__main__":
    main()
