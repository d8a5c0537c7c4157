"""CPU cost of progress reports, in one process on the memory backend (as benchmarks.hooks_cost):

    PYTHONPATH=. uv run python -m benchmarks.progress_cost -n 5000 --reports 100 --rounds 3

Prints the worker's CPU microseconds per task for tasks that never report (``silent``) and for
tasks that call ``omniq.current_task().set_progress`` ``--reports`` times each (``reporting``),
async and sync (thread pool); a report's cost is the difference divided by ``--reports``. The
writes to the store are coalesced (one per 0.2 s), so what is measured is the call itself.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import omniq
from benchmarks.noop import noop, noop_sync
from omniq import AsyncOmniQ
from omniq.backend import create_backend


async def report_async(reports: int) -> int:
    context = omniq.current_task()
    for n in range(1, reports + 1):
        context.set_progress(n / reports, note="step")
    return reports


def report_sync(reports: int) -> int:
    context = omniq.current_task()
    for n in range(1, reports + 1):
        context.set_progress(n / reports, note="step")
    return reports


async def drain(n: int, func: object, arg: int) -> float:
    """CPU seconds per task for a worker in this process to drain ``n`` tasks of ``func``."""
    async with AsyncOmniQ.from_backend(create_backend(url="memory://")) as oq:
        ids = await oq.enqueue_many([{"func": func, "args": (arg,)} for _ in range(n)])
        cpu = time.process_time()
        await oq.start_worker(concurrency=100)
        await oq.get_results(ids, timeout=300)
        await oq.stop_worker()
        return (time.process_time() - cpu) / n


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=5_000)
    parser.add_argument("--reports", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    modes = {
        "async silent": (noop, 0),
        "async reporting": (report_async, args.reports),
        "sync silent": (noop_sync, 0),
        "sync reporting": (report_sync, args.reports),
    }
    found: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(args.rounds):
        for mode, (func, arg) in modes.items():  # interleaved: load changes hit every mode
            found[mode].append(asyncio.run(drain(args.n, func, arg)) * 1e6)
    for mode in modes:
        rounds = ", ".join(f"{us:.0f}" for us in found[mode])
        median = sorted(found[mode])[len(found[mode]) // 2]
        print(f"{mode:16} CPU µs per task: {rounds} (median {median:.0f})")


if __name__ == "__main__":
    main()
