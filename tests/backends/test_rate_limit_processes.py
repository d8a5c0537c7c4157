"""Issue 19's "done when" for rate limits: a limit of 50/s, shared by 3 worker processes through
the backend, holds within 10 % over 20 s, measured here from the start times the tasks record.

One run per backend with a server-side bucket (SQLite, Redis, PostgreSQL), about 25 s each."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
import uuid
from collections.abc import AsyncIterator
from multiprocessing.synchronize import Event as MPEvent
from pathlib import Path
from typing import Any

import pytest

from omniq.models.task import Task, TaskStatus

RATE = 50  # tasks per second, across every process
WINDOW = 20.0  # seconds measured
PROCESSES = 3
TASKS = 1_400  # more than the window can take: the backlog never runs dry

_FDS: dict[str, int] = {}


def stamp(out_dir: str) -> None:
    """Appends when it started to this process's log (one line per run, never merged)."""
    path = os.path.join(out_dir, f"{os.getpid()}.log")
    fd = _FDS.get(path)
    if fd is None:
        fd = _FDS[path] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(fd, f"{time.time():.6f}\n".encode())


def hold(out_dir: str) -> None:
    """Runs 0.1 s and appends when it started and ended to this process's log."""
    start = time.time()
    time.sleep(0.1)
    path = os.path.join(out_dir, f"{os.getpid()}.held")
    with open(path, "a") as log:
        log.write(f"{start:.6f} {time.time():.6f}\n")


def _make_queue(kind: str, options: dict[str, Any]) -> Any:
    if kind == "sqlite":
        from omniq.storage.sqlite import AsyncSQLiteQueue

        return AsyncSQLiteQueue(**options)
    if kind == "redis":
        from omniq.storage.redis import AsyncRedisQueue

        return AsyncRedisQueue(**options)
    from omniq.storage.postgres import AsyncPostgresQueue

    return AsyncPostgresQueue(**options)


def _serve(kind: str, options: dict[str, Any], ready: MPEvent, done: MPEvent) -> None:
    asyncio.run(_serve_async(kind, options, ready, done))


async def _serve_async(kind: str, options: dict[str, Any], ready: MPEvent, done: MPEvent) -> None:
    from omniq.workers import AsyncWorker

    queue = _make_queue(kind, options)
    worker = AsyncWorker(
        queue, concurrency=10, idle_timeout=1.0, task_modules=[__name__], scheduler=False
    )
    await worker.start()
    ready.set()
    await asyncio.to_thread(done.wait)
    await worker.stop()  # what started finishes and is acknowledged
    await worker.result_store.close()
    await queue.close()


def _starts(out_dir: Path) -> list[float]:
    return sorted(float(x) for log in out_dir.iterdir() for x in log.read_text().split())


async def _first_start(out_dir: Path) -> float:
    for _ in range(600):
        starts = await asyncio.to_thread(_starts, out_dir)
        if starts:
            return starts[0]
        await asyncio.sleep(0.05)
    raise AssertionError("no task started within 30 s")


@pytest.fixture
async def store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(kind, queue options) of a fresh namespace on the backend, removed afterwards."""
    from tests.conftest import service_address

    kind: str = request.param
    project = f"ratelimit-{uuid.uuid4().hex[:10]}"
    if kind == "sqlite":
        yield kind, {"path": str(tmp_path / "limits.db"), "project_name": project}
    elif kind == "redis":
        import redis.asyncio as aioredis

        host, port = service_address("redis")
        yield kind, {"host": host, "port": port, "database": 9, "project_name": project}
        client = aioredis.Redis(host=host, port=port, db=9)
        try:
            async for key in client.scan_iter(match=f"*{project}*", count=1000):
                await client.unlink(key)
        finally:
            await client.aclose()
    else:
        import asyncpg  # type: ignore[import-untyped]

        host, port = service_address("postgres")
        schema = f"omniq_test_{uuid.uuid4().hex[:12]}"
        common = {"host": host, "port": port, "username": "postgres", "database": "test"}
        yield kind, {**common, "schema": schema, "project_name": project}
        conn = await asyncpg.connect(host=host, port=port, user="postgres", database="test")
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


@pytest.mark.parametrize(
    "store",
    [
        "sqlite",
        pytest.param("redis", marks=pytest.mark.services("redis")),
        pytest.param("postgres", marks=pytest.mark.services("postgres")),
    ],
    indirect=True,
)
async def test_a_rate_limit_holds_across_worker_processes(
    store: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    kind, options = store
    out_dir = tmp_path / "starts"
    out_dir.mkdir()
    queue = _make_queue(kind, options)
    async with queue:  # creates the schema before the workers race to
        await queue.enqueue_many(
            [
                Task(func=f"{__name__}:stamp", args=(str(out_dir),), rate_limit=f"{RATE}/s")
                for _ in range(TASKS)
            ]
        )
        ctx = multiprocessing.get_context("spawn")
        ready = [ctx.Event() for _ in range(PROCESSES)]
        done = ctx.Event()
        procs = [ctx.Process(target=_serve, args=(kind, options, r, done)) for r in ready]
        for proc in procs:
            proc.start()
        try:
            for event in ready:
                assert await asyncio.to_thread(event.wait, 60), "a worker process did not start"
            # the window is counted from the first start: serve until well past its end
            first = await _first_start(out_dir)
            await asyncio.sleep(max(0.0, first + 1.0 + WINDOW + 1.5 - time.time()))
        finally:
            done.set()
            for proc in procs:
                await asyncio.to_thread(proc.join, 30)
                if proc.is_alive():
                    proc.kill()
        stats = await queue.stats()

    logs = list(out_dir.iterdir())
    starts = _starts(out_dir)
    first = starts[0]
    # the bucket starts full (one second's worth, 50): the first 20 s may hold that burst more
    with_burst = sum(1 for t in starts if first <= t < first + WINDOW)
    steady = sum(1 for t in starts if first + 1.0 <= t < first + 1.0 + WINDOW)
    expected = RATE * WINDOW
    print(f"{kind}: {steady} starts in the steady 20 s, {with_burst} in the first 20 s")
    assert abs(steady - expected) <= 0.1 * expected, (steady, with_burst)
    assert with_burst <= 1.1 * expected + RATE, (steady, with_burst)
    assert len(logs) == PROCESSES, "every worker process took a share"
    # held-back tasks were deferred, never failed
    counts = stats.get("default", {})
    assert counts.get(TaskStatus.DEAD.value, 0) == 0
    assert counts.get(TaskStatus.SUCCESS.value, 0) == len(starts)


def _most_at_once(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


@pytest.mark.parametrize(
    "store",
    [
        "sqlite",
        pytest.param("redis", marks=pytest.mark.services("redis")),
        pytest.param("postgres", marks=pytest.mark.services("postgres")),
    ],
    indirect=True,
)
async def test_a_concurrency_key_holds_across_worker_processes(
    store: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    kind, options = store
    out_dir = tmp_path / "held"
    out_dir.mkdir()
    queue = _make_queue(kind, options)
    n = 40
    async with queue:
        await queue.enqueue_many(
            [
                Task(
                    func=f"{__name__}:hold",
                    args=(str(out_dir),),
                    concurrency_key="shared",
                    concurrency_limit=2,
                )
                for _ in range(n)
            ]
        )
        ctx = multiprocessing.get_context("spawn")
        ready = [ctx.Event() for _ in range(PROCESSES)]
        done = ctx.Event()
        procs = [ctx.Process(target=_serve, args=(kind, options, r, done)) for r in ready]
        for proc in procs:
            proc.start()
        try:
            for event in ready:
                assert await asyncio.to_thread(event.wait, 60), "a worker process did not start"
            for _ in range(1200):
                counts = (await queue.stats()).get("default", {})
                if counts.get(TaskStatus.SUCCESS.value, 0) == n:
                    break
                await asyncio.sleep(0.05)
        finally:
            done.set()
            for proc in procs:
                await asyncio.to_thread(proc.join, 30)
                if proc.is_alive():
                    proc.kill()
        usage = await queue.limit_usage()

    logs = list(out_dir.iterdir())
    intervals = [
        (float(a), float(b))
        for log in logs
        for a, b in (line.split() for line in log.read_text().splitlines())
    ]
    assert counts == {TaskStatus.SUCCESS.value: n}, counts
    assert len(intervals) == n
    assert _most_at_once(intervals) == 2  # never more, across the processes, and used fully
    assert len(logs) >= 2, "the tasks were shared between processes"
    assert [(s.key, s.limit, s.running) for s in usage.slots] == [("shared", 2, 0)]
