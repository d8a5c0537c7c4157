"""A running task's progress changes on the task page and the task list in a real browser
(Chromium through Playwright), over the page's stream, without a reload (issue 19, item 6)."""

from __future__ import annotations

from typing import Any

from tests.dashboard.test_browser import open_page, page, still_same_document
from tests.dashboard.test_progress import report, running_task

__all__ = ["page"]  # the browser fixture


async def test_the_browser_sees_progress_change_live(dashboard: Any, page: Any) -> None:
    served = await dashboard()
    task = await running_task(served.app)
    await report(served.app, task, 0.2, "first rows")
    await open_page(page, f"{served.url}/tasks/{task.id}")
    panel = page.locator("#task-progress")
    assert "20%" in await panel.inner_text()

    await report(served.app, task, 0.7, "most rows", rows=700)
    await page.locator("#task-progress", has_text="70%").wait_for(timeout=15_000)
    text = await panel.inner_text()
    assert "most rows" in text
    assert await page.locator("#task-progress progress").get_attribute("value") == "0.7"

    await open_page(page, f"{served.url}/tasks")
    row = page.locator(f'tr[data-task-id="{task.id}"]')
    assert "70%" in await row.inner_text()
    await report(served.app, task, 0.9, "almost")
    await page.locator(f'tr[data-task-id="{task.id}"] .progress-pct', has_text="90%").wait_for(
        timeout=15_000
    )
    assert await still_same_document(page)  # over the stream, not by a reload
