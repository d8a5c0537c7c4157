"""Object requests per task on the file backend, by phase, in one process.

    uv run python -m benchmarks.file_requests --url file:///tmp/omniq-objects -n 2000
    AWS_ENDPOINT_URL=http://127.0.0.1:9000 AWS_ALLOW_HTTP=true ... \\
        uv run python -m benchmarks.file_requests --url s3://bucket/prefix -n 1000

Object stores bill (and S3-compatible servers slow down) per request, so this counts what each
phase sends: enqueue one by one, enqueue in bulk, and a drain by a worker in this process with a
caller waiting for every result, plus the state writes and lost races behind them.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from benchmarks.noop import noop
from omniq import AsyncOmniQ
from omniq.backend import create_backend
from omniq.storage.file.queue import AsyncFileQueue


async def run(url: str, n: int, concurrency: int) -> dict[str, float]:
    out: dict[str, float] = {}
    oq = AsyncOmniQ.from_backend(
        create_backend(url=url, project_name=f"req-{uuid.uuid4().hex[:8]}")
    )
    await oq.connect()
    queue = oq.task_queue
    assert isinstance(queue, AsyncFileQueue), f"{url} is not a file-backend URL"
    objects = queue.objects

    single = min(n, 200)
    before, start = objects.requests, time.perf_counter()
    ids = [await oq.enqueue(noop, args=(i,)) for i in range(single)]
    out["enqueue_single_per_s"] = single / (time.perf_counter() - start)
    out["enqueue_single_requests_per_task"] = (objects.requests - before) / single

    before, start = objects.requests, time.perf_counter()
    ids += await oq.enqueue_many([{"func": noop, "args": (i,)} for i in range(n)])
    out["enqueue_many_per_s"] = n / (time.perf_counter() - start)
    out["enqueue_many_requests_per_task"] = (objects.requests - before) / n

    total = n + single
    before, commits, conflicts = objects.requests, queue.log.commits, queue.log.conflicts
    start = time.perf_counter()
    await oq.start_worker(concurrency=concurrency)
    for chunk in range(0, len(ids), 200):
        await asyncio.gather(*(oq.get_result(t, timeout=600) for t in ids[chunk : chunk + 200]))
    out["drain_per_s"] = total / (time.perf_counter() - start)
    out["drain_requests_per_task"] = (objects.requests - before) / total
    out["drain_state_writes_per_task"] = (queue.log.commits - commits) / total
    out["drain_lost_races"] = queue.log.conflicts - conflicts
    await oq.stop_worker()
    await oq.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args()
    for name, value in asyncio.run(run(args.url, args.n, args.concurrency)).items():
        shown = f"{value:,.0f}" if value >= 100 else f"{value:.2f}"
        print(f"{name:34} {shown:>10}")


if __name__ == "__main__":
    main()
