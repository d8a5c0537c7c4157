"""The dashboard in a real browser: Debian's Chromium driven by Playwright (no browser download).

Each test clicks as a person would and checks the backend, or watches the page change without a
reload (a marker set on ``window`` before must survive: a navigation would drop it).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest

from omniq.models.schedule import ScheduleState
from tests.dashboard.sample import populate

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = os.environ.get("OMNIQ_CHROMIUM") or shutil.which("chromium") or ""


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    if not CHROMIUM:
        message = "no system Chromium (apt-get install chromium, or set OMNIQ_CHROMIUM)"
        if os.environ.get("OMNIQ_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM)
        try:
            tab = await browser.new_page(viewport={"width": 1400, "height": 900})
            yield tab
        finally:
            await browser.close()


async def open_page(page: Any, url: str) -> None:
    await page.goto(url)
    await page.evaluate("window.__sameDocument = true")


async def still_same_document(page: Any) -> bool:
    return bool(await page.evaluate("window.__sameDocument === true"))


async def until(check: Any, what: str, limit: float = 15) -> None:
    """Polls the backend (the test observing the app, not timing it)."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.05)


async def test_pausing_a_schedule_by_click_pauses_it_in_the_backend(
    dashboard: Any, page: Any
) -> None:
    served = await dashboard()
    await populate(served.app, n=1)
    await open_page(page, f"{served.url}/schedules")
    row = page.locator('tr[data-schedule-id="nightly-sales"]')
    await row.get_by_role("button", name="Pause").click()

    async def paused() -> bool:
        schedule = await served.app.get_schedule("nightly-sales")
        return schedule is not None and schedule.state is ScheduleState.PAUSED

    await until(paused, "the schedule to be paused in the backend")
    # the page follows over its stream: the row now says paused and offers Resume
    await page.locator('tr[data-schedule-id="nightly-sales"][data-state="paused"]').wait_for()
    await row.get_by_role("button", name="Resume").wait_for()
    assert await page.locator("#toast").inner_text() == "schedule nightly-sales: pause done"
    assert await still_same_document(page)


async def test_requeueing_a_dead_task_by_click_runs_it_again(dashboard: Any, page: Any) -> None:
    served = await dashboard()
    ids = await populate(served.app, n=1)
    dead_id = ids["dead"][0]
    await open_page(page, f"{served.url}/dead")
    await served.app.start_worker(queues=["default"], concurrency=2)
    try:
        await (
            page.locator(f'tr[data-task-id="{dead_id}"]')
            .get_by_role("button", name="Requeue")
            .click()
        )

        async def ran_again() -> bool:
            events = [e.event_type.value for e in await served.app.get_events(dead_id, limit=100)]
            return "requeued" in events and "executing" in events[events.index("requeued") :]

        await until(ran_again, "the requeued task to run again")
        # the POST's answer patches the toast; a fast worker can run the task before it arrives
        await page.wait_for_function("document.querySelector('#toast').innerText !== ''")
        toast = await page.locator("#toast").inner_text()
        assert toast == f"task {dead_id} requeued"
        assert await still_same_document(page)
    finally:
        await served.app.stop_worker()


async def test_the_task_list_updates_live_when_a_task_completes(dashboard: Any, page: Any) -> None:
    served = await dashboard()
    task_id = await served.app.enqueue(
        "tests.dashboard.sample:send_email", args=("ada@example.com", "hello"), queue_name="high"
    )
    await open_page(page, f"{served.url}/tasks")
    row = page.locator(f'tr[data-task-id="{task_id}"]')
    assert await row.get_attribute("data-status") == "pending"
    await served.app.start_worker(queues=["high"], concurrency=1)
    try:
        await page.locator(f'tr[data-task-id="{task_id}"][data-status="success"]').wait_for(
            timeout=15_000
        )
        assert "success" in await row.inner_text()
        assert await still_same_document(page)  # it came over the stream, not by a reload
    finally:
        await served.app.stop_worker()


async def test_filtering_the_task_list_keeps_it_live(dashboard: Any, page: Any) -> None:
    served = await dashboard()
    ids = await populate(served.app, n=1)
    await open_page(page, f"{served.url}/tasks")
    await page.select_option("select[data-bind-status]", "dead")
    await page.locator('#tasks tbody tr[data-status="dead"]').first.wait_for()
    statuses = await page.locator("#tasks tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.status)"
    )
    assert set(statuses) == {"dead"}
    # a dead task requeued elsewhere is pending now: the filtered list, live, lets it go
    gone = ids["dead"][0]
    await served.app.requeue(gone)
    await page.locator(f'tr[data-task-id="{gone}"]').wait_for(state="detached", timeout=10_000)
    assert await page.locator('#tasks tbody tr[data-status="dead"]').count() == len(ids["dead"]) - 1
    assert await still_same_document(page)


async def test_older_and_newer_page_by_cursor_and_a_page_stays_put_as_tasks_arrive(
    dashboard: Any, page: Any
) -> None:
    from omniq.models.task import Task

    served = await dashboard()
    tasks = [
        Task(func="tests.dashboard.sample:send_email", args=(f"u{i}", "hi")) for i in range(120)
    ]
    await served.app.task_queue.enqueue_many(tasks)
    newest_first = [t.id for t in reversed(tasks)]
    await open_page(page, f"{served.url}/tasks")
    rows = page.locator("#tasks tbody tr")

    async def shown() -> list[str]:
        ids: list[str] = await rows.evaluate_all("rows => rows.map(r => r.dataset.taskId)")
        return ids

    assert (await shown())[0] == newest_first[0]
    await page.get_by_role("button", name="Older →").click()
    await page.locator(f'tr[data-task-id="{newest_first[50]}"]').wait_for()
    assert await shown() == newest_first[50:100]
    # newer tasks arrive: the page read from its cursor shows the same tasks, live
    await served.app.enqueue("tests.dashboard.sample:send_email", args=("late", "hi"))
    await page.wait_for_timeout(2_500)  # more than one refresh of the stream
    assert await shown() == newest_first[50:100]
    await page.get_by_role("button", name="Older →").click()
    await page.locator(f'tr[data-task-id="{newest_first[100]}"]').wait_for()
    assert await shown() == newest_first[100:]
    assert await page.get_by_role("button", name="Older →").is_disabled()
    await page.get_by_role("button", name="← Newer").click()
    await page.locator(f'tr[data-task-id="{newest_first[50]}"]').wait_for()
    assert await shown() == newest_first[50:100]
    assert await still_same_document(page)
