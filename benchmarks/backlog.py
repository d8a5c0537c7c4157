"""Cost per task as the backlog grows: the same operations with 10,000 and with 1,000,000 tasks
stored, half of them PENDING in a queue no worker serves and half SUCCESS and kept.

    PYTHONPATH=. uv run python -m benchmarks.backlog --url sqlite:////tmp/backlog.db
    PYTHONPATH=. uv run python -m benchmarks.backlog \\
        --url postgresql://postgres@127.0.0.1:5432/test
    PYTHONPATH=. uv run python -m benchmarks.backlog --url redis://127.0.0.1:6379/0

Each size is a store of its own (a SQLite file, a PostgreSQL schema, a Redis project), filled
first; then the sizes are measured in turn, ``--rounds`` times, and each figure is the median over
the rounds (a change in the machine's load hits every size alike). A measurement: enqueue, claim
(``dequeue``) and acknowledgement (``complete``) rates, one call at a time, of ``--ops`` tasks on
a queue of their own (each round adds ``--ops`` SUCCESS tasks); the median time of 5 calls of
each read (``stats``, the first page of ``list_tasks`` in either order, filtered by queue and
status, by function, by function and status, ``get_queue_size``, ``get_task``); one run of
``omniq info`` (a process of its own). The last column is the ratio large / small (1.00: flat).

The stores are filled directly, not through enqueue: SQLite and PostgreSQL copy one stored task
per row in a single INSERT ... SELECT (a recursive series / generate_series), so the kept counts
are updated by their triggers as for any insert; Redis, which has no such statement, takes
``enqueue_many`` batches and finishes the done half by claiming and acknowledging batches
(``max_finished`` is raised so that they are kept). Nothing is VACUUMed or ANALYZEd: PostgreSQL
is read as a server with autovacuum off leaves it.

At the end the SQLite files (``<url path>.<run>-<size>``) are deleted, the PostgreSQL schemas
(``omniq_backlog_<run>_<size>``) dropped, the Redis projects' keys deleted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks._cleanup import forget_project, pg_parts
from benchmarks.noop import noop
from omniq import AsyncOmniQ
from omniq.backend import create_backend
from omniq.models.task import Task, TaskStatus
from omniq.storage.base import Completion

FUNC = "benchmarks.noop:noop"
PARKED, DONE, WORK = "parked", "done", "work"


# -- filling the store --------------------------------------------------------------------------
def _copies_sql(columns: list[str], table: str, series: str, param: tuple[str, str]) -> str:
    """INSERT copying the task ``proto`` once per number ``g.i`` of ``series``, each its own id, queue
    and status (and, once finished, a finish time and one attempt; one in 500 of those is DEAD,
    a rare status for the function filter); ``param``: how the statement
    names its project and prototype id parameters."""
    replaced = {
        "id": "'bl-' || g.i",
        "queue": "CASE WHEN g.i % 2 = 0 THEN 'parked' ELSE 'done' END",
        "status": "CASE WHEN g.i % 2 = 0 THEN 'pending' WHEN g.i % 1000 = 1 THEN 'dead'"
        " ELSE 'success' END",
        "finished_at": "CASE WHEN g.i % 2 = 0 THEN NULL ELSE p.created_at END",
        "attempts": "CASE WHEN g.i % 2 = 0 THEN 0 ELSE 1 END",
    }
    kept = [c for c in columns if c != "seq"]
    values = ", ".join(replaced.get(c, f"p.{c}") for c in kept)
    return (
        f"INSERT INTO {table} ({', '.join(kept)}) SELECT {values} "
        f"FROM {series}, {table} AS p WHERE p.project = {param[0]} AND p.id = {param[1]}"
    )


def _sqlite_fill(path: str, project: str, proto: str, first: int, last: int) -> None:
    import sqlite3

    conn = sqlite3.connect(path, isolation_level=None, timeout=60)
    try:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(omniq_tasks)")]
        series = (
            "(WITH RECURSIVE s(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM s WHERE i < ?)"
            " SELECT i FROM s) AS g"
        )
        sql = _copies_sql(columns, "omniq_tasks", series, ("?", "?"))
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(sql, (first, last - 1, project, proto))
        conn.execute("COMMIT")
    finally:
        conn.close()


async def _pg_fill(url: str, project: str, proto: str, first: int, last: int) -> None:
    import asyncpg  # type: ignore[import-untyped]

    base, schema = pg_parts(url)
    conn = await asyncpg.connect(base)
    try:
        columns = [
            r["column_name"]
            for r in await conn.fetch(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = $1 AND table_name = 'tasks' AND is_generated = 'NEVER'"
                " ORDER BY ordinal_position",
                schema,
            )
        ]
        series = "generate_series($3::bigint, $4::bigint) AS g(i)"
        sql = _copies_sql(columns, f'"{schema}".tasks', series, ("$1", "$2"))
        # inserts count themselves (migration 0008): so does this one, as enqueue does
        counted = (
            f"WITH rows AS ({sql} RETURNING queue, status) "
            f'INSERT INTO "{schema}".task_counts AS c (project, queue, status, shard, n) '
            "SELECT $1, queue, status, pg_backend_pid(), count(*) FROM rows "
            "GROUP BY queue, status ORDER BY queue, status "
            "ON CONFLICT (project, queue, status, shard) DO UPDATE SET n = c.n + excluded.n"
        )
        await conn.execute(counted, project, proto, first, last - 1)
    finally:
        await conn.close()


async def _redis_fill(oq: AsyncOmniQ, first: int, last: int) -> None:
    queue = oq.task_queue
    for start in range(first, last, 10_000):
        tasks = [
            Task(func=FUNC, args=(i,), id=f"bl-{i}", queue_name=PARKED if i % 2 == 0 else DONE)
            for i in range(start, min(last, start + 10_000))
        ]
        await queue.enqueue_many(tasks)
    while batch := await queue.dequeue_many(DONE, 1000, lease=600):
        await queue.complete_many([Completion(t.id, t.claim or "") for t in batch])


async def fill(oq: AsyncOmniQ, url: str, first: int, last: int) -> float:
    """Stores the tasks numbered ``first`` .. ``last - 1``; returns the seconds it took."""
    start = time.perf_counter()
    project = oq.task_queue.project_name
    if url.startswith("redis"):
        await _redis_fill(oq, first, last)
    else:
        proto = await oq.enqueue(noop, args=(0,), queue_name="proto", task_id=f"proto-{first}")
        if url.startswith("sqlite"):
            path = urlsplit(url).path.removeprefix("/")  # sqlite:////abs or sqlite:///rel
            await asyncio.to_thread(_sqlite_fill, path, project, proto, first, last)
        else:
            await _pg_fill(url, project, proto, first, last)
    return time.perf_counter() - start


# -- measuring ----------------------------------------------------------------------------------
async def rates(oq: AsyncOmniQ, ops: int, warm: bool = False) -> dict[str, float]:
    """Enqueue, claim and acknowledge ``ops`` tasks one call at a time: tasks per second."""
    queue = oq.task_queue
    if not warm:  # the first calls of a process prepare statements and fill pools
        await rates(oq, max(1, ops // 5), warm=True)
    out: dict[str, float] = {}
    start = time.perf_counter()
    for i in range(ops):
        await oq.enqueue(noop, args=(i,), queue_name=WORK)
    out["enqueue /s"] = ops / (time.perf_counter() - start)
    claimed = []
    start = time.perf_counter()
    for _ in range(ops):
        task = await queue.dequeue(WORK, lease=600)
        assert task is not None
        claimed.append(task)
    out["claim /s"] = ops / (time.perf_counter() - start)
    start = time.perf_counter()
    for task in claimed:
        assert await queue.complete(task.id, task.claim or "")
    out["ack /s"] = ops / (time.perf_counter() - start)
    return out


async def _median_ms(call: Callable[[], Awaitable[Any]], rounds: int) -> float:
    await call()  # a first call fills caches and pools: the steady cost is what is compared
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        await call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def _info_ms(url: str, project: str, rounds: int) -> float:
    """``omniq info`` as a user runs it: a process of its own, start-up included."""
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "omniq", "info", "--url", url, "--project", project, "--json"],
            check=True,
            capture_output=True,
        )
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


async def reads(oq: AsyncOmniQ, url: str, rounds: int) -> dict[str, float]:
    """Median milliseconds of each read call (``omniq info``: one run)."""
    q = oq.task_queue
    parked_one = "bl-0"
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "stats ms": q.stats,
        "list_tasks(limit=50) ms": lambda: q.list_tasks(limit=50),
        "list_tasks newest first ms": lambda: q.list_tasks(limit=50, descending=True),
        "list_tasks(parked, pending) ms": lambda: q.list_tasks(PARKED, TaskStatus.PENDING, 50),
        "list_tasks(done, success) ms": lambda: q.list_tasks(DONE, TaskStatus.SUCCESS, 50),
        "list_tasks(func) ms": lambda: q.list_tasks(limit=50, func=FUNC),
        "list_tasks(func, success) ms": lambda: q.list_tasks(
            status=TaskStatus.SUCCESS, limit=50, func=FUNC
        ),
        "list_tasks(func, dead) ms": lambda: q.list_tasks(
            status=TaskStatus.DEAD, limit=50, func=FUNC
        ),
        "get_queue_size ms": lambda: q.get_queue_size(PARKED),
        "get_task ms": lambda: q.get_task(parked_one),
    }
    out = {name: await _median_ms(call, rounds) for name, call in calls.items()}
    out["omniq info ms"] = await asyncio.to_thread(_info_ms, url, q.project_name, 1)
    return out


def store_url(url: str, size: int, tag: str) -> str:
    """The store of one size: a file (SQLite) or schema (PostgreSQL) of its own, so that the
    small one really holds only its tasks; Redis keys are per project already."""
    if url.startswith("sqlite"):
        return f"{url}.{tag}-{size}"
    if url.startswith("postgres"):
        base, _ = pg_parts(url)
        return f"{base}?schema=omniq_backlog_{tag}_{size}"
    return url


def _remove_files(path: str) -> None:
    """A SQLite database and what lives beside it (its WAL, wake-up folder, key file)."""
    for suffix in ("", "-wal", "-shm", ".wake", ".key"):
        beside = Path(path + suffix)
        if beside.is_dir():
            shutil.rmtree(beside)
        else:
            beside.unlink(missing_ok=True)


async def drop_store(url: str, project: str) -> None:
    if url.startswith("sqlite"):
        _remove_files(urlsplit(url).path.removeprefix("/"))
    elif url.startswith("postgres"):
        import asyncpg

        base, schema = pg_parts(url)
        conn = await asyncpg.connect(base)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()
    else:
        await forget_project(url, project)


async def run(url: str, sizes: list[int], ops: int, rounds: int) -> dict[str, dict[str, float]]:
    """Fills one store per size, then measures them in turn, ``rounds`` times (a change in the
    machine's load hits every size alike); medians."""
    tag = uuid.uuid4().hex[:8]
    project = f"backlog-{tag}"
    # Redis keeps the newest max_finished finished tasks: keep the done half, as the others do
    keep = {"max_finished": 10 * max(sizes)} if url.startswith("redis") else {}
    stores: dict[int, tuple[str, AsyncOmniQ]] = {}
    found: dict[int, dict[str, list[float]]] = {size: {} for size in sizes}
    try:
        for size in sizes:
            at = store_url(url, size, tag)
            name = f"{project}-{size}"
            stores[size] = (
                at,
                AsyncOmniQ.from_backend(create_backend(url=at, project_name=name, **keep)),
            )
            await stores[size][1].connect()
            seconds = await fill(stores[size][1], at, 0, size)
            print(f"  {size:,} tasks stored ({seconds:.1f} s to add them)", file=sys.stderr)
        for round_ in range(rounds):
            for size, (at, oq) in stores.items():
                measured = {**await rates(oq, ops, warm=round_ > 0), **await reads(oq, at, 5)}
                for key, value in measured.items():
                    found[size].setdefault(key, []).append(value)
    finally:
        for size, (at, oq) in stores.items():
            await oq.close()
            await drop_store(at, f"{project}-{size}")
    return {
        f"{size:,}": {key: statistics.median(values) for key, values in by_key.items()}
        for size, by_key in found.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--ops", type=int, default=500, help="tasks enqueued, claimed, acked")
    parser.add_argument("--rounds", type=int, default=5, help="rounds over the sizes (medians)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = asyncio.run(run(args.url, sorted(args.sizes), args.ops, args.rounds))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    sizes = list(results)
    print(f"{'':32}" + "".join(f"{s:>12}" for s in sizes) + f"{'ratio':>8}")
    for key in results[sizes[0]]:
        values = [results[s][key] for s in sizes]
        ratio = values[-1] / values[0] if values[0] else float("nan")
        print(f"{key:32}" + "".join(f"{v:12,.1f}" for v in values) + f"{ratio:8.2f}")


if __name__ == "__main__":
    main()
