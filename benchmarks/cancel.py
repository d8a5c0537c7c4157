"""How long cancelling a running task takes, until ``cancel`` reports it stopped.

    PYTHONPATH=. uv run python -m benchmarks.cancel --url redis://127.0.0.1:6379/0 -n 50

One ``omniq worker`` process runs in a subprocess (as in benchmarks/latency.py) with its default
heartbeat. For each of ``-n`` tasks that sleep far longer than the run, this process waits until
the task is RUNNING, then times ``await oq.cancel(task_id)``: the request, its delivery to the
worker (the backend's cancel signal, or the worker's next heartbeat where there is none), the
worker stopping the task and recording it CANCELLED, and the caller learning of it. A cancel that
does not report True is counted as missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

from benchmarks.latency import summary
from omniq import AsyncOmniQ, TaskStatus
from omniq.backend import create_backend

TASK = "benchmarks.cancel:sleeper"


async def sleeper() -> None:
    """The task: runs until it is cancelled."""
    await asyncio.sleep(3600)


def start_worker(url: str, project: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")])),
    }
    cmd = [sys.executable, "-m", "omniq", "worker", "--url", url, "--project", project]
    cmd += ["--log-level", "WARNING", "--include", TASK.partition(":")[0]]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)


async def measure(url: str, n: int, timeout: float) -> dict[str, Any]:
    if url.startswith("memory:"):
        raise SystemExit("memory:// lives in one process: a worker process cannot see its tasks")
    project = f"cancel-{uuid.uuid4().hex[:8]}"
    oq = AsyncOmniQ.from_backend(create_backend(url=url, project_name=project))
    took: list[float] = []
    missed = 0
    async with oq:
        worker = start_worker(url, project)
        try:
            for _ in range(n):
                task_id = await oq.enqueue(TASK)
                deadline = time.monotonic() + 60
                while (task := await oq.get_task(task_id)) is None or (
                    task.status is not TaskStatus.RUNNING
                ):
                    if time.monotonic() > deadline:
                        raise RuntimeError("the worker did not start a task within 60 s")
                    await asyncio.sleep(0.005)
                t0 = time.monotonic()
                stopped = await oq.cancel(task_id, wait=timeout)
                if stopped:
                    took.append(time.monotonic() - t0)
                else:
                    missed += 1
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    if not took:
        raise RuntimeError(f"none of the {n} cancels reported the task stopped within {timeout} s")
    return {"url_scheme": url.split(":", 1)[0], "tasks": n, "missed": missed, **summary(took)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("-n", type=int, default=50, help="tasks cancelled (default 50)")
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="s each cancel may wait (default 30)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.n < 1:
        parser.error(f"-n must be >= 1, got {args.n}")
    out = asyncio.run(measure(args.url, args.n, args.timeout))
    if args.json:
        print(json.dumps(out))
        return
    print(
        f"{out['url_scheme']}: {out['tasks']} running tasks cancelled, {out['missed']} missed; "
        f"cancel -> reported stopped: p50 {out['p50_ms']:.1f} ms, p90 {out['p90_ms']:.1f} ms, "
        f"p99 {out['p99_ms']:.1f} ms, max {out['max_ms']:.1f} ms"
    )


if __name__ == "__main__":
    main()
