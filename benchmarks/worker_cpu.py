"""The worker's own CPU per task: microseconds of CPU the worker process (and its pool
children) spends per no-op task, per worker type, so OmniQ's overhead shows apart from the
broker's (whose server runs elsewhere and is not counted).

    PYTHONPATH=. uv run python -m benchmarks.worker_cpu --url redis://127.0.0.1:6379/15 \\
        -n 10000 --rounds 3 --types async,thread,process,gevent

For each round and worker type: one ``omniq worker --type <type>`` process (its default
concurrency unless ``--concurrency``) runs warm-up tasks, then N no-op tasks enqueued in bulk
(``async def`` for the async type, a plain ``def`` for the others); the figure is the CPU time
of the worker process and its pool children over those N tasks, divided by N. It is read from
``/proc/<pid>/stat`` (user + system time of each process: what ``time.process_time()`` reports
inside it) just before the N tasks are enqueued and once their results are all in. The types
are interleaved (round 1 of every type, then round 2), and the medians are printed.

The gevent type needs gevent installed; it is skipped otherwise. On Redis a round's keys are
deleted after it; on PostgreSQL its finished tasks stay (``VACUUM`` afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import subprocess
import sys
import uuid
from pathlib import Path

from benchmarks.noop import noop, noop_sync
from omniq import AsyncOmniQ
from omniq.backend import create_backend

TYPES = ("async", "thread", "process", "gevent")
_TICK = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (pool children and theirs)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = (task / "children").read_text().split()
            except OSError:
                continue
            for kid in map(int, kids):
                found.append(kid)
                todo.append(kid)
    return found


def _cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of ``pid`` and each of its descendants, by pid."""
    out: dict[int, float] = {}
    for p in [pid, *_children(pid)]:
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue  # ended meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        out[p] = (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
    return out


async def _forget(url: str, project: str) -> None:
    """Deletes a round's tasks and results on Redis (its keys carry the project as hash tag),
    so rounds do not pile up in a shared database; a SQLite file goes with its directory."""
    if not url.startswith(("redis://", "rediss://")):
        return
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=f"*{{{project}}}*", count=10_000)]
        for start in range(0, len(keys), 1000):
            await client.unlink(*keys[start : start + 1000])
    finally:
        await client.aclose()


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two readings; a child started in between counts in full."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


async def one_round(
    url: str, worker_type: str, n: int, warmup: int, concurrency: int | None
) -> float:
    """Microseconds of worker CPU per task for one worker process of ``worker_type``."""
    project = f"wcpu-{uuid.uuid4().hex[:8]}"
    func = noop if worker_type == "async" else noop_sync
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")])),
    }
    cmd = [sys.executable, "-m", "omniq", "worker", "--url", url, "--project", project]
    cmd += ["--type", worker_type, "--log-level", "WARNING", "--include", "benchmarks.noop"]
    if concurrency is not None:
        cmd += ["--concurrency", str(concurrency)]
    async with AsyncOmniQ.from_backend(create_backend(url=url, project_name=project)) as oq:
        worker = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)  # noqa: ASYNC220
        try:
            ids = await oq.enqueue_many([{"func": func, "args": (i,)} for i in range(warmup)])
            if None in await oq.get_results(ids, timeout=120):
                raise RuntimeError(f"the {worker_type} worker did not run its warm-up tasks")
            await asyncio.sleep(0.2)  # its acknowledgements and events settle
            before = _cpu(worker.pid)
            ids = await oq.enqueue_many([{"func": func, "args": (i,)} for i in range(n)])
            results = await oq.get_results(ids, timeout=600)
            after = _cpu(worker.pid)
            if sum(r is None for r in results):
                raise RuntimeError(f"the {worker_type} worker left tasks without a result")
        finally:
            worker.terminate()
            worker.wait(timeout=30)
        await _forget(url, project)
    return _spent(before, after) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--url",
        default="redis://127.0.0.1:6379/15",
        help="the broker (default Redis DB 15; a round's keys are deleted after it)",
    )
    parser.add_argument("-n", type=int, default=10_000, help="tasks measured per round")
    parser.add_argument("--warmup", type=int, default=200, help="tasks run first, not counted")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--types", default=",".join(TYPES), help="worker types, comma-separated")
    parser.add_argument(
        "--concurrency", type=int, default=None, help="the workers' (default: each type's own)"
    )
    args = parser.parse_args()
    types = [t.strip() for t in args.types.split(",") if t.strip()]
    for t in types:
        if t not in TYPES:
            parser.error(f"unknown worker type {t!r}; choose from {', '.join(TYPES)}")
    if "gevent" in types and importlib.util.find_spec("gevent") is None:
        print("gevent is not installed: skipping the gevent type", file=sys.stderr)
        types.remove("gevent")
    if args.n < 1 or args.rounds < 1:
        parser.error(f"-n and --rounds must be >= 1, got {args.n} and {args.rounds}")
    found: dict[str, list[float]] = {t: [] for t in types}
    for _ in range(args.rounds):
        for t in types:  # interleaved: a change in the machine's load hits every type
            found[t].append(
                asyncio.run(one_round(args.url, t, args.n, args.warmup, args.concurrency))
            )
    print(f"worker CPU per no-op task, {args.url.split(':', 1)[0]}, {args.n} tasks per round")
    for t in types:
        rounds = ", ".join(f"{us:.0f}" for us in found[t])
        print(f"{t:8} {statistics.median(found[t]):6.0f} µs (rounds: {rounds})")


if __name__ == "__main__":
    main()
