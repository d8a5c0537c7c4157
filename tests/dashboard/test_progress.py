"""The dashboard shows progress (issue 19, item 6): the JSON API carries it, the task list and the
task page render it, and a real browser sees a running task's progress change over the page's
stream, without a reload."""

from __future__ import annotations

from typing import Any

from omniq import AsyncOmniQ
from omniq.models.progress import TaskProgress
from omniq.models.task import Task
from omniq.storage.base import SupportsProgress


async def running_task(app: AsyncOmniQ) -> Task:
    await app.enqueue("tests.dashboard.sample:send_email", args=("ada@example.com", "hi"))
    task = await app.task_queue.dequeue(lease=300)
    assert task is not None
    return task


async def report(app: AsyncOmniQ, task: Task, fraction: float, note: str, **data: Any) -> None:
    queue = app.task_queue
    assert isinstance(queue, SupportsProgress)
    progress = TaskProgress(fraction=fraction, note=note, data=data or None, attempt=1)
    assert await queue.set_progress(task.id, task.claim or "", progress)


async def test_the_api_and_the_pages_carry_progress(dashboard: Any) -> None:
    served = await dashboard()
    task = await running_task(served.app)
    await report(served.app, task, 0.4, "loading rows", rows=400)
    async with served.client() as client:
        detail = (await client.get(f"/api/tasks/{task.id}")).json()
        assert detail["progress"]["fraction"] == 0.4
        assert detail["progress"]["percent"] == 40.0
        assert detail["progress"]["note"] == "loading rows"
        assert detail["progress"]["data"] == {"rows": 400}
        listed = (await client.get("/api/tasks")).json()
        row = next(r for r in listed["tasks"] if r["id"] == task.id)
        assert row["progress"]["percent"] == 40.0
        assert "data" not in row["progress"]

        page = (await client.get(f"/tasks/{task.id}")).text
        assert 'id="task-progress"' in page
        assert '<progress value="0.4" max="1">' in page
        assert "loading rows" in page
        assert "&#34;rows&#34;: 400" in page or '"rows": 400' in page
        listing = (await client.get("/tasks")).text
        assert '<span class="progress-pct">40%</span>' in listing


async def test_a_task_without_progress_shows_no_bar(dashboard: Any) -> None:
    served = await dashboard()
    task = await running_task(served.app)
    async with served.client() as client:
        assert (await client.get(f"/api/tasks/{task.id}")).json()["progress"] is None
        assert "task-progress" not in (await client.get(f"/tasks/{task.id}")).text
