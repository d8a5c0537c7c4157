"""Task functions and a realistic store for the dashboard's tests and its screenshot script.

The functions live at module level so a worker finds them by import path
(``tests.dashboard.sample:send_email``), whichever process runs it.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from omniq._time import utcnow
from omniq.core import AsyncOmniQ
from omniq.models.task import TaskStatus

QUEUES = ["high", "default", "reports"]


def send_email(to: str, subject: str) -> str:
    return f"sent {subject!r} to {to}"


async def resize_image(name: str, width: int) -> dict[str, Any]:
    await asyncio.sleep(0.01)
    return {"file": name, "width": width, "bytes": width * 731}


def charge_card(order_id: str, amount: float) -> str:
    raise RuntimeError(f"card declined for order {order_id} ({amount:.2f} EUR)")


def slow(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


def nightly_report(kind: str = "sales") -> str:
    return f"{kind} report ready"


async def wait_until_settled(app: AsyncOmniQ, *, timeout: float = 20.0) -> None:
    """Until no task is running or pending to run within a minute (a retry waits a moment; the
    delayed report waits hours)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        stats = await app.task_queue.stats()
        running = sum(c.get("running", 0) for c in stats.values())
        due = 0
        for q in stats:
            for t in await app.task_queue.list_tasks(q, TaskStatus.PENDING, 200):
                if t.eta is None or t.eta <= utcnow() + timedelta(minutes=1):
                    due += 1
        if not running and not due:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("tasks did not settle")


async def populate(app: AsyncOmniQ, *, n: int = 24) -> dict[str, list[str]]:
    """Successes, dead letters, a delayed task and schedules, through a real worker; returns
    the ids by kind."""
    here = "tests.dashboard.sample"
    ids: dict[str, list[str]] = {"ok": [], "dead": [], "delayed": [], "schedules": []}
    users = ["ada@example.com", "grace@example.com", "linus@example.com", "<b>mallory</b>"]
    for i in range(n):
        ids["ok"].append(
            await app.enqueue(
                f"{here}:send_email",
                queue_name="high",
                args=(users[i % len(users)], f"Invoice #{1000 + i}"),
            )
        )
        ids["ok"].append(
            await app.enqueue(
                f"{here}:resize_image", queue_name="default", args=(f"photo_{i}.jpg", 320 + 40 * i)
            )
        )
    for i in range(3):
        ids["dead"].append(
            await app.enqueue(
                f"{here}:charge_card",
                queue_name="default",
                args=(f"ord-{7700 + i}", 49.5 + i),
                max_retries=1,
                retry_delay=0.01,
                retry_jitter=False,
            )
        )
    await app.start_worker(queues=QUEUES, concurrency=8)
    try:
        await wait_until_settled(app)
    finally:
        await app.stop_worker()
    ids["delayed"].append(
        await app.enqueue(
            f"{here}:nightly_report",
            queue_name="reports",
            args=("inventory",),
            run_in=timedelta(hours=2),
        )
    )
    ids["schedules"].append(
        await app.schedule(
            f"{here}:nightly_report",
            cron="0 2 * * *",
            args=("sales",),
            queue_name="reports",
            schedule_id="nightly-sales",
        )
    )
    ids["schedules"].append(
        await app.schedule(
            f"{here}:send_email",
            interval=3600,
            args=("ops@example.com", "Hourly digest"),
            queue_name="high",
            schedule_id="hourly-digest",
        )
    )
    paused = await app.schedule(
        f"{here}:resize_image",
        interval=900,
        args=("banner.png", 1200),
        schedule_id="banner-refresh",
    )
    await app.pause_schedule(paused)
    ids["schedules"].append(paused)
    return ids


__all__ = ["QUEUES", "populate", "wait_until_settled"]
