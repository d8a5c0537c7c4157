"""The command line every peer driver shares, so the harness drives all of them the same way.

    <venv>/bin/python benchmarks/peers/<peer>_driver.py enqueue --backend redis --mode single -n 2000
    <venv>/bin/python benchmarks/peers/<peer>_driver.py worker --backend redis [--variant simple]

``enqueue`` puts N no-op tasks on the queue and prints one JSON line ``{"per_s": rate}`` (``null``
when the library has no bulk API: the tasks are then enqueued one by one, untimed, so that the
drain that follows has the same N tasks). ``worker`` runs one worker process in the foreground
until SIGTERM. Where the servers are comes from the environment (set by the harness):
``OMNIQ_BENCH_REDIS_URL``, ``OMNIQ_BENCH_PG_DSN``, ``OMNIQ_BENCH_DIR`` (SQLite files).

Standard library only: this module runs inside every peer's virtualenv.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable

#: enqueue(backend, variant, mode, n) -> tasks/s, or None when ``mode`` is "bulk" and the library
#: has no bulk (or concurrent) enqueue
Enqueue = Callable[[str, str, str, int], "float | None"]
#: worker(backend, variant) -> never returns normally (runs until SIGTERM)
Worker = Callable[[str, str], None]


def redis_url() -> str:
    return os.environ.get("OMNIQ_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")


def pg_dsn() -> str:
    return os.environ.get("OMNIQ_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/omniq_bench")


def sqlite_path(name: str) -> str:
    return os.path.join(os.environ["OMNIQ_BENCH_DIR"], name)


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
    enq.add_argument("--mode", required=True, choices=("single", "bulk"))
    enq.add_argument("-n", type=int, required=True)
    wrk = sub.add_parser("worker")
    wrk.add_argument("--backend", required=True, choices=backends)
    wrk.add_argument("--variant", default="")
    args = parser.parse_args()
    if args.command == "enqueue":
        if args.n < 1:
            parser.error(f"-n must be at least 1, got {args.n}")
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
