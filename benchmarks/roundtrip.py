"""Enqueue -> result round trips on one backend, in one process.

    uv run python -m benchmarks.roundtrip --url memory:// -n 20000

Prints enqueue rates (one by one, bulk of prebuilt Task objects, bulk of option dicts), drain
throughput of pre-enqueued tasks, and the enqueue->result rate sequentially (one task in flight)
and pipelined (all in flight).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

from benchmarks.noop import noop
from omniq import AsyncOmniQ
from omniq.backend import create_backend
from omniq.models.task import Task


async def run(url: str, n: int, concurrency: int, bulk_only: bool = False) -> dict[str, float]:
    out: dict[str, float] = {}

    run_id = uuid.uuid4().hex[:8]

    async def fresh(phase: str) -> AsyncOmniQ:
        # a project of its own per phase: tasks one phase leaves behind never count in another
        app = AsyncOmniQ.from_backend(
            create_backend(url=url, project_name=f"bench-{phase}-{run_id}")
        )
        await app.connect()
        return app

    if not bulk_only:
        oq = await fresh("single")
        start = time.perf_counter()
        for i in range(n):
            await oq.enqueue(noop, args=(i,))
        out["enqueue_single_per_s"] = n / (time.perf_counter() - start)
        await oq.close()

    # the storage's own bulk path: Task objects built beforehand (the dict form below also
    # times building each Task from its options, which is the same for every backend)
    oq = await fresh("tasks")
    tasks = [Task(func="benchmarks.noop:noop", args=(i,)) for i in range(n)]
    start = time.perf_counter()
    await oq.enqueue_many(tasks)
    out["enqueue_many_tasks_per_s"] = n / (time.perf_counter() - start)
    await oq.task_queue.purge()
    await oq.close()
    if bulk_only:
        return out

    oq = await fresh("bulk")
    start = time.perf_counter()
    ids = await oq.enqueue_many([{"func": noop, "args": (i,)} for i in range(n)])
    out["enqueue_many_per_s"] = n / (time.perf_counter() - start)
    start = time.perf_counter()
    await oq.start_worker(concurrency=concurrency)
    await asyncio.gather(*(oq.get_result(t, timeout=60) for t in ids))
    out["drain_per_s"] = n / (time.perf_counter() - start)

    m = max(1, n // 4)
    start = time.perf_counter()
    for i in range(m):
        await oq.get_result(await oq.enqueue(noop, args=(i,)), timeout=10)
    out["roundtrip_sequential_per_s"] = m / (time.perf_counter() - start)

    start = time.perf_counter()
    ids = [await oq.enqueue(noop, args=(i,)) for i in range(n)]
    await asyncio.gather(*(oq.get_result(t, timeout=60) for t in ids))
    out["roundtrip_pipelined_per_s"] = n / (time.perf_counter() - start)
    await oq.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="memory://")
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--bulk-only",
        action="store_true",
        help="only enqueue_many of n prebuilt Task objects, as one batch (then purged)",
    )
    args = parser.parse_args()
    result = asyncio.run(run(args.url, args.n, args.concurrency, args.bulk_only))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:<28} {value:>10,.0f}")


if __name__ == "__main__":
    main()
