"""The command line every peer driver shares, so the harness drives all of them the same way.

    <venv>/bin/python benchmarks/peers/<peer>_driver.py enqueue --backend redis --mode single -n 2000
    <venv>/bin/python benchmarks/peers/<peer>_driver.py worker --backend redis [--variant simple]

``enqueue`` puts N no-op tasks on the queue and prints one JSON line ``{"per_s": rate}`` (``null``
when the library has no bulk API: the tasks are then enqueued one by one, untimed, so that the
drain that follows has the same N tasks). ``--mode paced`` enqueues one by one on a fixed
schedule, one task every ``--interval`` ms, each carrying the ``CLOCK_MONOTONIC`` time just before
its enqueue call as its argument, so the task's completion record gives enqueue -> start latency
(``ticks``). ``worker`` runs one worker process in the foreground
until SIGTERM. Where the servers are comes from the environment (set by the harness):
``OMNIQ_BENCH_REDIS_URL``, ``OMNIQ_BENCH_PG_DSN``, ``OMNIQ_BENCH_NATS_URL``,
``OMNIQ_BENCH_DIR`` (SQLite files).

Standard library only: this module runs inside every peer's virtualenv.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator

#: enqueue(backend, variant, mode, n) -> tasks/s, or None when ``mode`` is "bulk" and the library
#: has no bulk (or concurrent) enqueue
Enqueue = Callable[[str, str, str, int], "float | None"]
#: worker(backend, variant) -> never returns normally (runs until SIGTERM)
Worker = Callable[[str, str], None]


def redis_url() -> str:
    return os.environ.get("OMNIQ_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")


def nats_url() -> str:
    return os.environ.get("OMNIQ_BENCH_NATS_URL", "nats://127.0.0.1:4222")


def pg_dsn() -> str:
    return os.environ.get("OMNIQ_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/omniq_bench")


def sqlite_path(name: str) -> str:
    return os.path.join(os.environ["OMNIQ_BENCH_DIR"], name)


#: seconds between two tasks in ``--mode paced`` (set from ``--interval``)
interval_s = 0.005


def ticks(mode: str, n: int) -> Iterable[int]:
    """The arguments of the N one-by-one enqueues: ``0 .. n-1``, or in ``paced`` mode the
    monotonic time (ns) of each enqueue, taken just before it, on a fixed schedule (open loop:
    a slow enqueue makes the next one go at once, not later)."""
    return _paced(n) if mode == "paced" else range(n)


def _paced(n: int) -> Iterator[int]:
    start = time.monotonic()
    for k in range(n):
        delay = start + k * interval_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # blocking on purpose: the previous enqueue has been awaited
        yield time.monotonic_ns()


def timed(n: int, body: Callable[[], object]) -> float:
    """Tasks per second of ``body()``, which enqueues ``n`` tasks."""
    start = time.perf_counter()
    body()
    return n / (time.perf_counter() - start)


def main(backends: tuple[str, ...], enqueue: Enqueue, worker: Worker) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    enq = sub.add_parser("enqueue")
    enq.add_argument("--backend", required=True, choices=backends)
    enq.add_argument("--variant", default="")
    enq.add_argument("--mode", required=True, choices=("single", "bulk", "paced"))
    enq.add_argument("-n", type=int, required=True)
    enq.add_argument("--interval", type=float, default=5.0, help="ms between paced tasks")
    wrk = sub.add_parser("worker")
    wrk.add_argument("--backend", required=True, choices=backends)
    wrk.add_argument("--variant", default="")
    args = parser.parse_args()
    if args.command == "enqueue":
        if args.n < 1:
            parser.error(f"-n must be at least 1, got {args.n}")
        if args.interval <= 0:
            parser.error(f"--interval must be positive, got {args.interval}")
        global interval_s
        interval_s = args.interval / 1000
        rate = enqueue(args.backend, args.variant, args.mode, args.n)
        print(json.dumps({"per_s": rate}), flush=True)
    else:
        worker(args.backend, args.variant)
    sys.exit(0)


def exec_module(module: str, *args: str) -> None:
    """Replaces this process by ``python -m module args`` (a library's own worker command), so
    the harness's signals reach it directly."""
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", module, *args])
