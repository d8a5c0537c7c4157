"""``omniq tasks show`` and ``omniq tasks list`` show a task's progress (issue 19, item 6)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from omniq import AsyncOmniQ
from omniq.backend import create_backend
from omniq.cli import app as typer_app
from omniq.models.progress import TaskProgress
from omniq.storage.base import SupportsProgress
from tests.worker import progress_tasks as pt

runner = CliRunner()


def _fill(url: str) -> tuple[str, str]:
    """A task a real worker ran to the end (final report 1.0) and one still running at 40 %."""

    async def fill() -> tuple[str, str]:
        async with AsyncOmniQ.from_backend(create_backend(url=url, project_name="shop")) as oq:
            await oq.start_worker()
            done = await oq.enqueue(pt.report_steps, args=(4,))
            assert await oq.get_result(done, timeout=30) == 4
            await oq.stop_worker()
            await oq.enqueue(pt.no_report)
            running = await oq.task_queue.dequeue(lease=300)
            assert running is not None
            queue = oq.task_queue
            assert isinstance(queue, SupportsProgress)
            report = TaskProgress(fraction=0.4, note="loading rows", data={"rows": 400}, attempt=1)
            assert await queue.set_progress(running.id, running.claim or "", report)
            return done, running.id

    return asyncio.run(fill())


def cli(*args: str) -> str:
    out = runner.invoke(typer_app, list(args), env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    return out.output


def test_tasks_show_and_list_show_progress(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    done, running = _fill(url)
    where = ("--url", url, "--project", "shop")

    data = json.loads(cli("tasks", "show", running, *where, "--json"))
    assert data["status"] == "running"
    assert data["progress"]["fraction"] == 0.4
    assert data["progress"]["percent"] == 40.0
    assert data["progress"]["note"] == "loading rows"
    assert data["progress"]["data"] == {"rows": 400}

    table = cli("tasks", "show", running, *where)
    assert "progress" in table
    assert "40%" in table
    assert "loading rows" in table
    assert '{"rows": 400}' in table

    finished = json.loads(cli("tasks", "show", done, *where, "--json"))
    assert finished["status"] == "success"
    assert finished["progress"]["fraction"] == 1.0
    assert finished["progress"]["note"] == "step 4 of 4"
    assert "100%" in cli("tasks", "show", done, *where)

    listed = json.loads(cli("tasks", "list", *where, "--json"))
    by_id = {row["id"]: row for row in listed["tasks"]}
    assert by_id[running]["progress"]["percent"] == 40.0
    assert "data" not in by_id[running]["progress"]  # lists carry no partial data
    assert by_id[done]["progress"]["percent"] == 100.0
    assert "running 40%" in cli("tasks", "list", *where)


def test_info_lists_the_running_tasks_with_their_progress(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    _done, running = _fill(url)
    where = ("--url", url, "--project", "shop")

    data = json.loads(cli("info", *where, "--json"))
    assert [r["id"] for r in data["running"]] == [running]  # the finished one is not running
    assert data["running"][0]["progress"]["percent"] == 40.0
    assert data["running"][0]["progress"]["note"] == "loading rows"

    table = cli("info", *where)
    assert "Running" in table
    assert running in table
    assert "40%  loading rows" in table
