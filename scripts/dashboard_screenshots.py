"""Writes a screenshot of every dashboard page, over a store filled with realistic tasks.

    uv run python scripts/dashboard_screenshots.py [--out screenshots] [--url sqlite:///x.db]

It fills the store through a real worker (successes, dead letters, a delayed task, schedules),
keeps a trickle of tasks running so the charts have a history, serves the dashboard on a free
loopback port and drives the system Chromium (``chromium`` on PATH, or ``--chromium PATH``) with
Playwright: no browser is downloaded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.async_api import async_playwright
from tests.dashboard.sample import QUEUES, populate

from omniq.backend import create_backend
from omniq.core import AsyncOmniQ
from omniq.dashboard.server import build_server

HERE = "tests.dashboard.sample"


async def trickle(app: AsyncOmniQ, stop: asyncio.Event) -> None:
    """A few tasks a second, one in ten failing for good, so throughput and failure rate move."""
    n = 0
    while not stop.is_set():
        n += 1
        if n % 10 == 0:
            await app.enqueue(
                f"{HERE}:charge_card", args=(f"ord-{9000 + n}", 12.0), queue_name="default"
            )
        else:
            await app.enqueue(
                f"{HERE}:resize_image", args=(f"thumb_{n}.png", 64 + n % 400), queue_name="default"
            )
            await app.enqueue(
                f"{HERE}:send_email", args=("team@example.com", f"Update {n}"), queue_name="high"
            )
        await asyncio.sleep(0.15 if (n // 25) % 2 else 0.05)


async def main(out: Path, url: str | None, chromium: str, warmup: float) -> None:
    tmp = tempfile.mkdtemp(prefix="omniq-shots-")
    backend = create_backend(url=url or f"sqlite:///{tmp}/shop.db", project_name="shop")
    app = AsyncOmniQ.from_backend(backend, events=True)
    await app.connect()
    ids = await populate(app)
    server = build_server(app, port=0, owns_app=False, signals=False)
    serving = await server.start()
    stop = asyncio.Event()
    await app.start_worker(queues=QUEUES, concurrency=4)
    feeding = asyncio.create_task(trickle(app, stop))
    base = server.url
    try:
        await asyncio.sleep(warmup)  # the metrics sampler needs a few intervals for a chart
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium)
            page = await browser.new_page(viewport={"width": 1440, "height": 900})
            shots = [
                ("overview", "/"),
                ("tasks", "/tasks"),
                ("tasks-dead-filter", "/tasks?status=dead"),
                ("task-detail", f"/tasks/{ids['dead'][0]}"),
                ("schedules", "/schedules"),
                ("dead-letters", "/dead"),
                ("events", "/events"),
            ]
            for name, path in shots:
                await page.goto(base + path)
                await page.wait_for_timeout(1200)  # one refresh over the stream
                target = out / f"{name}.png"
                await page.screenshot(path=str(target), full_page=name not in ("tasks", "events"))
                print(target)
            await browser.close()
    finally:
        stop.set()
        feeding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeding
        await app.stop_worker(timeout=5)
        server.stop()
        await serving
        await app.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("screenshots"))
    parser.add_argument("--url", help="backend URL (default: a fresh SQLite file)")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--warmup", type=float, default=12.0, help="seconds of trickle first")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(args.out, args.url, args.chromium, args.warmup))
