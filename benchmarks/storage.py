"""Storage operations one at a time and in batches, per backend: event logging rate, event query
latency, result write rate and result read latency (what seeds/001's performance section
speaks of), in one process against the store itself.

    PYTHONPATH=. uv run python -m benchmarks.storage --url redis://127.0.0.1:6379/13 -n 5000

Latencies are per call, sequential (one in flight), p50/p99 in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
import uuid
from datetime import UTC, datetime

from omniq.backend import create_backend
from omniq.models.event import EventType, TaskEvent
from omniq.models.result import ResultStatus, TaskResult


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] * 1e3

    return rank(0.50), rank(0.99)


async def run(url: str, n: int) -> dict[str, float]:
    project = f"bench-storage-{uuid.uuid4().hex[:8]}"
    backend = create_backend(url=url, project_name=project)
    events = backend.event_storage
    results = backend.result_storage
    out: dict[str, float] = {}
    async with events, results:
        batch = [
            TaskEvent(task_id=f"t{i}", event_type=EventType.COMPLETED, queue_name="default")
            for i in range(n)
        ]
        start = time.perf_counter()
        for i in range(0, n, 100):  # the EventLogger writes in batches like these
            await events.log_events(batch[i : i + 100])
        out["events_batched_per_s"] = n / (time.perf_counter() - start)

        singles = batch[: min(n, 2000)]
        start = time.perf_counter()
        for event in singles:
            await events.log_event(event)
        out["events_single_per_s"] = len(singles) / (time.perf_counter() - start)

        timings = []
        for i in range(min(n, 1000)):
            t0 = time.perf_counter()
            await events.get_events(task_id=f"t{i}", limit=10)
            timings.append(time.perf_counter() - t0)
        out["event_query_p50_ms"], out["event_query_p99_ms"] = _percentiles(timings)

        written = [
            TaskResult(task_id=f"r{i}", status=ResultStatus.SUCCESS, result={"n": i})
            for i in range(n)
        ]
        start = time.perf_counter()
        for i in range(0, n, 100):
            await results.set_many(written[i : i + 100])
        out["results_batched_per_s"] = n / (time.perf_counter() - start)

        timings = []
        for i in range(min(n, 2000)):
            t0 = time.perf_counter()
            found = await results.get(f"r{i}")
            timings.append(time.perf_counter() - t0)
            assert found is not None
        out["result_get_p50_ms"], out["result_get_p99_ms"] = _percentiles(timings)
        out["result_get_per_s"] = len(timings) / sum(timings)

        # leave nothing behind on shared servers
        await events.cleanup_old_events(datetime(9999, 1, 1, tzinfo=UTC))
        for i in range(n):
            await results.delete(f"r{i}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run(args.url, args.n))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(
                f"{key:<24} {value:>12,.2f}"
                if key.endswith("_ms")
                else f"{key:<24} {value:>12,.0f}"
            )


if __name__ == "__main__":
    main()
