"""Enqueue -> start latency at light load, and how soon a waiting caller gets the result.

    PYTHONPATH=. uv run python -m benchmarks.latency --url redis://127.0.0.1:6379/0 -n 1000

One ``omniq worker`` process runs in a subprocess (as in benchmarks/drain.py). This process
enqueues one task every ``--interval`` ms at a fixed rate (open loop: a slow enqueue does not delay
the next one) and, for each, waits for its result with ``get_result`` from the moment it is
enqueued. The task returns ``time.monotonic()`` as it starts, which on Linux is one clock for
every process on the machine, so:

- enqueue -> start: from just before ``enqueue`` is called to the task function starting;
- start -> result: from the task function starting to ``get_result`` returning in the caller.
  The task does nothing, so this is the worker's acknowledgement and result write plus the
  result storage's wake-up of a waiting caller (completion -> get_result).

Warm-up tasks run first and are not counted. The in-process ``memory://`` backend cannot be
measured this way (its worker would have to live in this process); every other URL can.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import time
import uuid
from typing import Any

from omniq import AsyncOmniQ
from omniq.backend import create_backend

#: The task, by import path: the worker imports it from this module (``benchmarks.latency``),
#: never from ``__main__``.
TASK = "benchmarks.latency:started_at"


async def started_at() -> float:
    """The task: the (machine-wide) monotonic time at which it started."""
    return time.monotonic()


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def summary(values: list[float]) -> dict[str, float]:
    """Milliseconds: p50, p90, p99 and max."""
    return {
        "p50_ms": percentile(values, 0.50) * 1e3,
        "p90_ms": percentile(values, 0.90) * 1e3,
        "p99_ms": percentile(values, 0.99) * 1e3,
        "max_ms": max(values) * 1e3,
    }


def start_worker(url: str, project: str, concurrency: int | None) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")])),
    }
    cmd = [
        sys.executable,
        "-m",
        "omniq",
        "worker",
        "--url",
        url,
        "--project",
        project,
        "--log-level",
        "WARNING",
        "--include",
        TASK.partition(":")[0],
    ]
    if concurrency is not None:
        cmd += ["--concurrency", str(concurrency)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)


async def measure(
    url: str, n: int, interval: float, warmup: int, concurrency: int | None, timeout: float
) -> dict[str, Any]:
    if url.startswith("memory:"):
        raise SystemExit(
            "memory:// lives in one process: a separate worker process cannot see its tasks"
        )
    project = f"latency-{uuid.uuid4().hex[:8]}"
    oq = AsyncOmniQ.from_backend(create_backend(url=url, project_name=project))
    async with oq:
        worker = start_worker(url, project, concurrency)
        try:
            # the worker is up (and every connection warm) once a few tasks came back
            for _ in range(warmup):
                task_id = await oq.enqueue(TASK)
                if await oq.get_result(task_id, timeout=60) is None:
                    raise RuntimeError("the worker did not run a warm-up task within 60 s")

            to_start: list[float] = []
            to_result: list[float] = []
            missing = 0

            async def one() -> None:
                nonlocal missing
                sent = time.monotonic()
                task_id = await oq.enqueue(TASK)
                began = await oq.get_result(task_id, timeout=timeout)
                got = time.monotonic()
                if began is None:
                    missing += 1
                    return
                to_start.append(began - sent)
                to_result.append(got - began)

            pending = []
            t0 = time.monotonic()
            for i in range(n):
                delay = t0 + i * interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                pending.append(asyncio.create_task(one()))
            await asyncio.gather(*pending)
            elapsed = time.monotonic() - t0
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    if not to_start:
        raise RuntimeError(f"none of the {n} tasks came back within {timeout} s")
    return {
        "url_scheme": url.split(":", 1)[0],
        "tasks": n,
        "interval_ms": interval * 1e3,
        "offered_per_s": n / elapsed,
        "missing": missing,
        "enqueue_to_start": summary(to_start),
        "start_to_result": summary(to_result),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("-n", type=int, default=1000, help="tasks measured (default 1000)")
    parser.add_argument(
        "--interval", type=float, default=5.0, help="ms between enqueues (default 5)"
    )
    parser.add_argument("--warmup", type=int, default=20, help="tasks run first, not counted")
    parser.add_argument(
        "--concurrency", type=int, default=None, help="the worker's (default: its own default)"
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="s to wait for each result (default 30)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.n < 1 or args.interval <= 0:
        parser.error(
            f"-n must be >= 1 and --interval > 0, got -n {args.n} --interval {args.interval}"
        )
    out = asyncio.run(
        measure(args.url, args.n, args.interval / 1e3, args.warmup, args.concurrency, args.timeout)
    )
    if args.json:
        print(json.dumps(out))
        return
    print(
        f"{out['url_scheme']}: {out['tasks']} tasks, one every {out['interval_ms']:g} ms "
        f"({out['offered_per_s']:,.0f}/s), {out['missing']} missing"
    )
    print(f"{'':<18}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for label, key in (
        ("enqueue -> start", "enqueue_to_start"),
        ("start -> result", "start_to_result"),
    ):
        row = out[key]
        print(
            f"{label:<18}{row['p50_ms']:>9.2f}{row['p90_ms']:>9.2f}"
            f"{row['p99_ms']:>9.2f}{row['max_ms']:>9.2f}"
        )


if __name__ == "__main__":
    main()
