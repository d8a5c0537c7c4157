"""Drain throughput of N pre-enqueued no-op tasks by separate ``omniq worker`` processes.

    uv run python -m benchmarks.drain --url sqlite:////tmp/drain.db -n 20000 --procs 1

``--metrics`` serves the workers' Prometheus metrics (``--metrics-port``), ``--tracing`` makes
OpenTelemetry spans in them (benchmarks/traced.py): their cost is the difference with a plain run.

The clock runs from the first completed task to the last (steady state, as in PERFORMANCE.md), so
process start-up is not counted. The run's project is deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid

from benchmarks._cleanup import forget_project
from benchmarks.noop import cpu_work, noop, noop_sync
from omniq import AsyncOmniQ
from omniq.backend import create_backend


async def drain(
    url: str,
    n: int,
    procs: int,
    concurrency: int,
    worker_type: str,
    sync_func: bool,
    cpu: bool = False,
    metrics: bool = False,
    tracing: bool = False,
) -> float:
    project = f"drain-{uuid.uuid4().hex[:8]}"
    oq = AsyncOmniQ.from_backend(create_backend(url=url, project_name=project))
    async with oq:
        for start in range(0, n, 5000):
            await oq.enqueue_many(
                [
                    {"func": cpu_work, "args": (20_000,)}
                    if cpu
                    else {"func": noop_sync if sync_func else noop, "args": (i,)}
                    for i in range(start, min(n, start + 5000))
                ]
            )
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")])
            ),
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
            "--concurrency",
            str(concurrency),
            "--type",
            worker_type,
            "--log-level",
            "WARNING",
            "--include",
            "benchmarks.noop",
        ]
        if tracing:
            cmd += ["--include", "benchmarks.traced"]
        workers = [
            subprocess.Popen(  # noqa: ASYNC220
                cmd + (["--metrics-port", str(_free_port())] if metrics else []),
                env=env,
                stdout=subprocess.DEVNULL,
            )
            for _ in range(procs)
        ]
        try:
            first = last = None
            while True:
                done = (await oq.task_queue.stats()).get("default", {}).get("success", 0)
                now = time.perf_counter()
                if done and first is None:
                    first, first_done = now, done
                if done >= n:
                    last = now
                    break
                await asyncio.sleep(0.02)
            assert first is not None
            assert last is not None
            return (n - first_done) / max(last - first, 1e-9)
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                w.wait(timeout=30)
            # its tasks deleted: left behind (and on PostgreSQL with autovacuum off, not
            # vacuumed) they slowed every later run down
            await forget_project(url, project)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--procs", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--type", default="async")
    parser.add_argument(
        "--sync-func", action="store_true", help="a plain def task instead of async def"
    )
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="CPU-bound tasks (benchmarks.noop.cpu_work, as in benchmarks.worker_types)",
    )
    parser.add_argument("--metrics", action="store_true", help="workers serve Prometheus metrics")
    parser.add_argument("--tracing", action="store_true", help="workers make OpenTelemetry spans")
    args = parser.parse_args()
    rate = asyncio.run(
        drain(
            args.url,
            args.n,
            args.procs,
            args.concurrency,
            args.type,
            args.sync_func,
            args.cpu,
            metrics=args.metrics,
            tracing=args.tracing,
        )
    )
    extra = "".join(f", {name}" for name in ("metrics", "tracing") if getattr(args, name))
    print(
        f"drain {args.n} tasks, {args.procs} worker process(es), {args.type}{extra}: "
        f"{rate:,.0f} tasks/s"
    )


if __name__ == "__main__":
    main()
