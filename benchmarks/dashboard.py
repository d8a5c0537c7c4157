"""The dashboard on a big store: page load times and how fast a change reaches an open page.

    PYTHONPATH=. uv run python -m benchmarks.dashboard --url sqlite:////tmp/big.db -n 1000000
    PYTHONPATH=. uv run python -m benchmarks.dashboard \\
        --url 'postgresql://postgres@127.0.0.1/test?schema=omniq_dash_bench' -n 1000000

Loading a million tasks takes a minute or two: ``--project NAME --keep`` leaves them stored, and a
later run with the same ``--project`` and ``-n`` measures again without loading; a last run
without ``--keep`` empties the store.

Fills the store with ``n`` pending tasks over three queues (in batches through ``enqueue_many``)
plus a few hundred a real worker ran (successes and dead letters), serves the dashboard on a
loopback port, then measures:

- each page and API call: median and max of 5 loads, in milliseconds;
- SSE update latency: a page's stream is open, a task is enqueued behind the dashboard's back;
  the time until the stream delivers it (includes waiting for the next refresh, 1 s);
- SSE action latency: the task is cancelled through the API; the time until the open stream
  shows it cancelled (an action wakes the streams at once).

Also timed: a cursor page 1,000 tasks from the oldest, search by id, the function filter (common
and rare), and the events API with two filters. Unless ``--keep``, the store is emptied at the
end (its queues purged; a PostgreSQL schema given in the URL is dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from typing import Any

import httpx

from omniq.backend import create_backend
from omniq.core import AsyncOmniQ
from omniq.dashboard.server import build_server
from omniq.models.task import Task
from omniq.storage.base.listing import PURGEABLE_STATUSES

QUEUES = ("high", "default", "low")
PAGES = (
    "/",
    "/tasks",
    "/tasks?status=pending&queue=default",
    "/tasks?func=charge",
    "/tasks?func=send_email&status=dead",
    "/dead",
    "/schedules",
    "/api/overview",
    "/events",
    "/api/tasks?limit=50",
    "/api/dead",
    "/api/metrics",
    "/api/events?event_type=dead&queue=high",
)


async def fill(app: AsyncOmniQ, n: int, batch: int = 5000) -> float:
    start = time.perf_counter()
    for first in range(0, n, batch):
        tasks = [
            Task(
                func="tests.dashboard.sample:send_email",
                args=(f"user{i}@example.com", "hi"),
                queue_name=QUEUES[i % len(QUEUES)],
            )
            for i in range(first, min(n, first + batch))
        ]
        await app.task_queue.enqueue_many(tasks)
    return time.perf_counter() - start


async def worked(app: AsyncOmniQ) -> None:
    """A few hundred finished tasks on a queue of their own, so every status has rows."""
    for i in range(200):
        await app.enqueue(
            "tests.dashboard.sample:resize_image", args=(f"p{i}.png", 64), queue_name="done"
        )
    for i in range(20):
        await app.enqueue(
            "tests.dashboard.sample:charge_card", args=(f"o{i}", 1.0), queue_name="done"
        )
    await app.start_worker(queues=["done"], concurrency=20)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        counts = (await app.task_queue.stats()).get("done", {})
        if counts.get("success", 0) + counts.get("dead", 0) >= 220:
            break
        await asyncio.sleep(0.2)
    await app.stop_worker()


async def stream_until(
    client: httpx.AsyncClient, path: str, marker: str, started: asyncio.Event
) -> float:
    """Opens ``path``, sets ``started`` after the first fragment, returns the time at which
    ``marker`` arrived."""
    async with client.stream("GET", path, params={"datastar": "{}"}) as r:
        seen = ""
        async for chunk in r.aiter_text():
            seen += chunk
            if not started.is_set() and "datastar-merge-fragments" in seen:
                seen = ""
                started.set()
            elif started.is_set() and marker in seen:
                return time.perf_counter()
    raise RuntimeError(f"the stream of {path} ended before {marker!r}")


async def sse_latency(app: AsyncOmniQ, client: httpx.AsyncClient, rounds: int) -> dict[str, Any]:
    enqueue, action = [], []
    for n in range(rounds):
        started = asyncio.Event()
        task_id = f"bench-{uuid.uuid4().hex[:12]}"
        waiting = asyncio.create_task(
            stream_until(client, f"/ui/stream/tasks?cid=b{n}", f'data-task-id="{task_id}"', started)
        )
        await started.wait()
        t0 = time.perf_counter()
        await app.enqueue(
            "tests.dashboard.sample:send_email", args=("x", "y"), task_id=task_id, queue_name="high"
        )
        enqueue.append(await waiting - t0)

        started = asyncio.Event()
        marker = f'data-task-id="{task_id}" data-status="cancelled"'
        waiting = asyncio.create_task(
            stream_until(client, f"/ui/stream/tasks?cid=c{n}", marker, started)
        )
        await started.wait()
        t0 = time.perf_counter()
        answer = await client.post(f"/api/tasks/{task_id}/cancel")
        answer.raise_for_status()
        action.append(await waiting - t0)
    return {
        "sse_enqueue_ms_median": round(statistics.median(enqueue) * 1e3, 1),
        "sse_enqueue_ms_max": round(max(enqueue) * 1e3, 1),
        "sse_action_ms_median": round(statistics.median(action) * 1e3, 1),
        "sse_action_ms_max": round(max(action) * 1e3, 1),
    }


async def stored(app: AsyncOmniQ) -> int:
    """Tasks already in the benchmark's queues (a store kept by an earlier ``--keep`` run)."""
    counts = await app.task_queue.stats()
    return sum(sum(counts.get(q, {}).values()) for q in QUEUES)


async def time_pages(client: httpx.AsyncClient, paths: dict[str, str]) -> dict[str, Any]:
    """``paths``: label -> path (the label leaves out the ids, which change from run to run)."""
    out: dict[str, Any] = {}
    for key, path in paths.items():
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            r = await client.get(path)
            times.append(time.perf_counter() - t0)
            r.raise_for_status()
        out[f"GET {key}"] = {
            "ms_median": round(statistics.median(times) * 1e3, 1),
            "ms_max": round(max(times) * 1e3, 1),
        }
    return out


async def main(url: str, n: int, rounds: int, project: str | None, keep: bool) -> dict[str, Any]:
    project = project or f"bench-dash-{uuid.uuid4().hex[:8]}"
    backend = create_backend(url=url, project_name=project)
    app = AsyncOmniQ.from_backend(backend, events=True)
    await app.connect()
    out: dict[str, Any] = {"url": url, "project": project, "tasks": n}
    try:
        already = await stored(app)
        if already >= n:
            out["fill_s"] = f"kept from an earlier run ({already} tasks)"
        else:
            if already:
                raise SystemExit(f"project {project!r} holds {already} tasks, fewer than {n}")
            out["fill_s"] = round(await fill(app, n), 1)
            await worked(app)
        server = build_server(app, port=0, owns_app=False, signals=False)
        serving = await server.start()
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
            await client.get("/")  # the sampler's first reading, the connection pools
            newest = (await client.get("/api/tasks?limit=1")).json()["tasks"][0]["id"]
            # a cursor near the oldest end: the deepest page there is
            deep = (await app.task_queue.list_tasks(limit=1, offset=1000))[0].id
            paths = {
                **{path: path for path in PAGES},
                "/tasks?after={deep}": f"/tasks?after={deep}",
                "/api/tasks?limit=50&after={deep}": f"/api/tasks?limit=50&after={deep}",
                "/tasks?search={id}": f"/tasks?search={newest}",
                "/tasks/{id}": f"/tasks/{newest}",
            }
            out.update(await time_pages(client, paths))
            client.headers["X-CSRF-Token"] = client.cookies.get("omniq_csrf", "")
            out.update(await sse_latency(app, client, rounds))
        server.stop()
        await serving
    finally:
        if not keep:
            for queue in (*QUEUES, "done"):
                await app.task_queue.purge(queue, statuses=PURGEABLE_STATUSES)
        await app.close()
        if not keep and url.startswith("postgres") and "schema=" in url:
            await drop_schema(url)
    return out


async def drop_schema(url: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    base, _, query = url.partition("?")
    schema = dict(p.split("=", 1) for p in query.split("&"))["schema"]
    conn = await asyncpg.connect(base)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("-n", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--project",
        help="project name (default: a fresh one); with --keep, a later run on the same project "
        "and -n reuses the stored tasks instead of loading them again",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave the tasks stored at the end (by default the queues are purged and a "
        "PostgreSQL schema dropped); run once more without it to clean up",
    )
    args = parser.parse_args()
    result = asyncio.run(main(args.url, args.n, args.rounds, args.project, args.keep))
    print(json.dumps(result, indent=2))
