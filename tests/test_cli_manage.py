"""``omniq tasks``, ``schedules``, ``dlq``, ``purge`` and ``cleanup`` on a SQLite file that a real
worker filled (successes, dead letters, a delayed task, schedules)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from omniq import AsyncOmniQ
from omniq.backend import create_backend
from omniq.cli import app as typer_app
from omniq.models.result import ResultStatus
from omniq.models.schedule import ScheduleState
from omniq.models.task import TaskStatus
from tests.dashboard.sample import populate

runner = CliRunner()


def open_app(url: str) -> AsyncOmniQ:
    return AsyncOmniQ.from_backend(create_backend(url=url, project_name="shop"), events=True)


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, list[str]]]:
    """One store for the read-only tests (module scope: the worker run is the slow part)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('cli') / 'shop.db'}"

    async def fill() -> dict[str, list[str]]:
        app = open_app(url)
        try:
            return await populate(app, n=3)
        finally:
            await app.close()

    return url, asyncio.run(fill())


@pytest.fixture
def fresh(tmp_path: Path) -> tuple[str, dict[str, list[str]]]:
    """A store of its own, for the tests that change it."""
    url = f"sqlite:///{tmp_path / 'shop.db'}"

    async def fill() -> dict[str, list[str]]:
        app = open_app(url)
        try:
            return await populate(app, n=1)
        finally:
            await app.close()

    return url, asyncio.run(fill())


def cli(*args: str) -> Any:
    return runner.invoke(typer_app, list(args), env={"COLUMNS": "200"})


def read(url: str, work: Any) -> Any:
    async def go() -> Any:
        app = open_app(url)
        try:
            return await work(app)
        finally:
            await app.close()

    return asyncio.run(go())


def test_tasks_list_json_is_newest_first_and_filters_by_status(filled: Any) -> None:
    url, ids = filled
    out = cli("tasks", "list", "--url", url, "--project", "shop", "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["total"] == len(ids["ok"]) + len(ids["dead"]) + len(ids["delayed"])
    assert data["tasks"][0]["id"] == ids["delayed"][0]  # enqueued last
    dead = json.loads(
        cli("tasks", "list", "--url", url, "--project", "shop", "--status", "dead", "--json").output
    )
    assert sorted(t["id"] for t in dead["tasks"]) == sorted(ids["dead"])
    assert all(t["error_type"] == "RuntimeError" for t in dead["tasks"])


def test_tasks_list_filters_by_function_name(filled: Any) -> None:
    url, _ = filled
    out = cli("tasks", "list", "--url", url, "--project", "shop", "--func", "charge", "--json")
    funcs = {t["func"] for t in json.loads(out.output)["tasks"]}
    assert funcs == {"tests.dashboard.sample:charge_card"}


def test_tasks_list_table_shows_ids_and_errors(filled: Any) -> None:
    url, ids = filled
    out = cli("tasks", "list", "--url", url, "--project", "shop", "--status", "dead")
    assert out.exit_code == 0, out.output
    for tid in ids["dead"]:
        assert tid in out.output
    assert "RuntimeError: card declined" in out.output


def test_tasks_list_refuses_an_unknown_status_naming_it(filled: Any) -> None:
    url, _ = filled
    out = runner.invoke(typer_app, ["tasks", "list", "--url", url, "--status", "exploded"])
    assert out.exit_code == 2
    assert "'exploded'" in out.output


def test_tasks_show_has_arguments_traceback_and_events(filled: Any) -> None:
    url, ids = filled
    tid = ids["dead"][0]
    out = cli("tasks", "show", tid, "--url", url, "--project", "shop", "--events", "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["status"] == "dead"
    assert data["args"][0].startswith("ord-")
    assert "RuntimeError: card declined" in data["error_traceback"]
    assert [e["event_type"] for e in data["events"]][-1] == "dead"
    table = cli("tasks", "show", tid, "--url", url, "--project", "shop")
    assert "Traceback" in table.output
    assert tid in table.output


def test_tasks_show_events_says_when_none_are_kept_or_recorded(filled: Any, tmp_path: Path) -> None:
    url, ids = filled
    tid = ids["dead"][0]
    kept = cli("tasks", "show", tid, "--url", url, "--project", "shop", "--events")
    assert "Events" in kept.output
    assert "dead" in kept.output
    config = tmp_path / "omniq.yaml"  # names no event store: this application keeps none
    config.write_text(f"project_name: shop\ntask_queue:\n  url: {url}\n")
    out = cli("tasks", "show", tid, "--config", str(config), "--events")
    assert out.exit_code == 0, out.output
    assert "no events: this application keeps none" in out.output


def test_tasks_list_prints_the_cursor_of_the_next_page(filled: Any) -> None:
    url, _ = filled
    base = ["tasks", "list", "--url", url, "--project", "shop", "--queue", "high"]
    whole = json.loads(cli(*base, "--json").output)["tasks"]
    first = cli(*base, "--limit", "2")
    cursor = whole[1]["id"]
    assert f"more: --after {cursor}" in first.output
    second = json.loads(cli(*base, "--limit", "2", "--after", cursor, "--json").output)
    assert [t["id"] for t in second["tasks"]] == [t["id"] for t in whole[2:4]]
    assert second["before"] == whole[2]["id"]


def test_tasks_show_unknown_id_is_one_line_and_exit_1(filled: Any) -> None:
    url, _ = filled
    out = runner.invoke(typer_app, ["tasks", "show", "no-such-task", "--url", url])
    assert out.exit_code == 1
    assert "no task with id 'no-such-task'" in out.output


def test_schedules_pause_and_resume_change_the_stored_state(fresh: Any) -> None:
    url, _ = fresh
    listed = json.loads(
        cli("schedules", "list", "--url", url, "--project", "shop", "--json").output
    )
    assert {s["id"]: s["state"] for s in listed}["nightly-sales"] == "active"
    assert (
        cli("schedules", "pause", "nightly-sales", "--url", url, "--project", "shop").exit_code == 0
    )

    async def state(app: AsyncOmniQ) -> ScheduleState:
        schedule = await app.get_schedule("nightly-sales")
        assert schedule is not None
        return schedule.state

    assert read(url, state) is ScheduleState.PAUSED
    assert (
        cli("schedules", "resume", "nightly-sales", "--url", url, "--project", "shop").exit_code
        == 0
    )
    assert read(url, state) is ScheduleState.ACTIVE


def test_a_long_task_id_is_shown_whole_at_80_columns(fresh: Any) -> None:
    """The table's id is what one copies into ``tasks show``: folded, never cut (a schedule's
    occurrence ids are 64 characters)."""
    url, _ = fresh
    long_id = "occurrence-" + "0123456789" * 6

    async def enqueue(app: AsyncOmniQ) -> Any:
        return await app.enqueue("tests.dashboard.sample:send_email", task_id=long_id)

    read(url, enqueue)
    out = runner.invoke(
        typer_app,
        ["tasks", "list", "--url", url, "--project", "shop", "--limit", "1"],
        env={"COLUMNS": "80"},
    )
    assert out.exit_code == 0, out.output
    lines = [line.split()[0] for line in out.output.splitlines()[4:6]]
    assert "".join(lines) == long_id


def test_schedules_run_enqueues_one_task_of_the_schedule(fresh: Any) -> None:
    url, _ = fresh
    out = cli("schedules", "run", "hourly-digest", "--url", url, "--project", "shop", "--json")
    task_id = json.loads(out.output)["task_id"]

    async def task(app: AsyncOmniQ) -> Any:
        return await app.get_task(task_id)

    found = read(url, task)
    assert found.schedule_id == "hourly-digest"
    assert found.status is TaskStatus.PENDING
    assert found.args == ("ops@example.com", "Hourly digest")


def test_dlq_list_then_requeue_all_empties_it(fresh: Any) -> None:
    url, ids = fresh
    listed = json.loads(cli("dlq", "list", "--url", url, "--project", "shop", "--json").output)
    assert sorted(t["id"] for t in listed["tasks"]) == sorted(ids["dead"])
    out = cli("dlq", "requeue", "--all", "--url", url, "--project", "shop", "--json")
    assert json.loads(out.output) == {"requeued": len(ids["dead"])}

    async def statuses(app: AsyncOmniQ) -> set[TaskStatus]:
        return {t.status for t in [await app.get_task(i) for i in ids["dead"]] if t}

    assert read(url, statuses) == {TaskStatus.PENDING}


def test_dlq_requeue_one_and_exit_1_for_a_task_that_is_not_dead(fresh: Any) -> None:
    url, ids = fresh
    out = cli("dlq", "requeue", ids["dead"][0], "--url", url, "--project", "shop")
    assert out.exit_code == 0
    assert "requeued 1" in out.output
    again = cli("dlq", "requeue", ids["ok"][0], "--url", url, "--project", "shop")
    assert again.exit_code == 1
    assert "left as it is" in again.output


def test_dlq_requeue_needs_ids_or_all(fresh: Any) -> None:
    url, _ = fresh
    out = runner.invoke(typer_app, ["dlq", "requeue", "--url", url])
    assert out.exit_code == 2
    assert "--all" in out.output


def test_dlq_purge_deletes_the_dead_tasks_only_and_keeps_their_results(fresh: Any) -> None:
    url, ids = fresh
    other = cli("dlq", "purge", "--queue", "high", "--yes", "--url", url, "--project", "shop")
    assert other.exit_code == 0, other.output
    assert "deleted 0 dead task(s) of queue 'high'" in other.output
    out = cli("dlq", "purge", "--yes", "--url", url, "--project", "shop", "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == {"queue": None, "deleted": len(ids["dead"])}

    async def left(app: AsyncOmniQ) -> tuple[list[Any], bool, list[Any]]:
        return (
            [await app.get_task(i) for i in ids["dead"]],
            await app.get_task(ids["ok"][0]) is not None,
            [await app.result_store.get(i) for i in ids["dead"]],
        )

    tasks, ok_kept, results = read(url, left)
    assert tasks == [None] * len(ids["dead"])
    assert ok_kept
    assert all(r is not None and r.status is ResultStatus.ERROR for r in results)
    listed = json.loads(cli("dlq", "list", "--url", url, "--project", "shop", "--json").output)
    assert listed["tasks"] == []


def test_dlq_purge_asks_first_and_refuses_a_bad_queue_name(fresh: Any) -> None:
    url, ids = fresh
    no = runner.invoke(typer_app, ["dlq", "purge", "--url", url, "--project", "shop"], input="n\n")
    assert no.exit_code == 1
    assert "Delete every dead task of every queue?" in no.output
    bad = runner.invoke(typer_app, ["dlq", "purge", "--queue", "bad queue!", "--url", url])
    assert bad.exit_code == 2
    assert "bad queue!" in bad.output

    async def dead(app: AsyncOmniQ) -> int:
        return len(await app.list_dead())

    assert read(url, dead) == len(ids["dead"])


def test_purge_deletes_only_the_waiting_tasks_of_the_queue(fresh: Any) -> None:
    url, ids = fresh
    out = cli("purge", "reports", "--yes", "--url", url, "--project", "shop", "--json")
    assert json.loads(out.output) == {"queue": "reports", "deleted": 1}

    async def exists(app: AsyncOmniQ) -> tuple[bool, bool]:
        return (
            await app.get_task(ids["delayed"][0]) is not None,
            await app.get_task(ids["ok"][0]) is not None,
        )

    assert read(url, exists) == (False, True)


def test_purge_refuses_a_bad_queue_name_before_connecting(fresh: Any) -> None:
    url, _ = fresh
    out = runner.invoke(typer_app, ["purge", "bad queue!", "--yes", "--url", url])
    assert out.exit_code == 2
    assert "bad queue!" in out.output


def test_cleanup_reports_each_sweep(fresh: Any) -> None:
    url, _ = fresh
    out = cli("cleanup", "--url", url, "--project", "shop", "--events-older-than", "0", "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["expired_tasks"] == 0
    assert data["expired_results"] == 0
    assert data["spent_limit_records"] == 0
    assert data["deleted_events"] is None  # --url without --events: no event store


def test_cleanup_deletes_spent_limit_records(fresh: Any) -> None:
    url, _ = fresh

    async def released_key(app: AsyncOmniQ) -> None:
        assert await app.task_queue.acquire_slot("user:1", "h1", 1, 30) is True
        await app.task_queue.release_slot("user:1", "h1")

    read(url, released_key)
    out = cli("cleanup", "--url", url, "--project", "shop", "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["spent_limit_records"] == 1
    usage = read(url, lambda app: app.limit_usage())
    assert usage.slots == []


def test_cleanup_deletes_events_older_than_asked(fresh: Any) -> None:
    url, _ = fresh
    keep = cli(
        "cleanup",
        "--url",
        url,
        "--project",
        "shop",
        "--events",
        "--events-older-than",
        "1",
        "--json",
    )
    assert json.loads(keep.output)["deleted_events"] == 0
    out = cli(
        "cleanup",
        "--url",
        url,
        "--project",
        "shop",
        "--events",
        "--events-older-than",
        "0",
        "--json",
    )
    assert json.loads(out.output)["deleted_events"] > 0

    async def left(app: AsyncOmniQ) -> int:
        return len(await app.get_events(limit=10))

    assert read(url, left) == 0
