"""The ``omniq`` command: worker, info, demo, version, and one-line errors for bad input.

In-process tests use typer's CliRunner, or call the worker's ``serve`` on the test's own loop and
send real signals to this process; tests where a process boundary matters (the demo as a user runs
it, a worker on a SQLite file shared with the test) run ``python -m omniq`` as a subprocess.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from omniq import AsyncOmniQ, OmniQ, TaskStatus, __version__
from omniq._time import utcnow
from omniq.backend import create_backend
from omniq.cli import app as typer_app
from omniq.cli.source import AppSource, Selected, load_app
from omniq.cli.worker import (
    WorkerOptions,
    WorkerOutcome,
    banner,
    build_worker,
    parse_rate_limits,
    serve,
)
from omniq.demo import Step, build_app, plan, run_demo
from omniq.models.limits import parse_rate_limit
from omniq.models.worker import WorkerInfo
from omniq.storage.base import Capability
from omniq.storage.memory import AsyncMemoryQueue
from tests import tasks_fixture

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()

# --- applications that --app points at (tests.test_cli:<name>) -----------------------------------

#: A sync application, as a user's module would define it; memory so that importing this module
#: never touches the disk whatever the default backend is.
SYNC_APP = OmniQ(project_name="cli-sync", task_queue=AsyncMemoryQueue(queues=["high", "low"]))


@SYNC_APP.task(name="cli-greet", queue_name="high")
def greet(name: str) -> str:
    return f"hello {name}"


#: Replaced per test (monkeypatch) by an application the test filled.
INFO_APP: AsyncOmniQ | None = None

NOT_AN_APP = 42


def memory_app(project: str = "cli-test") -> AsyncOmniQ:
    return AsyncOmniQ(project_name=project, task_queue=AsyncMemoryQueue(project_name=project))


def subprocess_env(**extra: str) -> dict[str, str]:
    """The test's environment, with the repository importable (tests.tasks_fixture)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["COLUMNS"] = "200"
    env.update(extra)
    return env


async def eventually(check: Callable[[], Awaitable[bool]], what: str, limit: float = 20) -> None:
    """Waits until ``check()`` holds (the test observing another actor, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.02)


async def status_of(app: AsyncOmniQ, task_id: str) -> TaskStatus | None:
    task = await app.get_task(task_id)
    return None if task is None else task.status


# --- version and help -----------------------------------------------------------------------------


def test_version_prints_the_package_version() -> None:
    result = runner.invoke(typer_app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"omniq {__version__}"


def test_help_lists_every_command() -> None:
    result = runner.invoke(typer_app, ["--help"])
    assert result.exit_code == 0
    for command in ("worker", "info", "demo"):
        assert command in result.stdout


def test_installed_script_and_python_dash_m_both_run_the_cli() -> None:
    script = Path(sys.executable).parent / "omniq"
    for command in ([str(script)], [sys.executable, "-m", "omniq"]):
        done = subprocess.run(
            [*command, "--version"], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"omniq {__version__}"


# --- bad input: one line naming the value, exit 2 -------------------------------------------------

BAD_INPUTS = [
    (["info", "--url", "redis//localhost"], "redis//localhost"),
    (["info", "--url", "bogus://somewhere"], "'bogus'"),
    (["worker", "--url", "bogus://somewhere"], "'bogus'"),
    (["worker", "--app", "tests.test_cli:no_such_attribute"], "no_such_attribute"),
    (["worker", "--app", "no_such_module_for_omniq:app"], "no_such_module_for_omniq"),
    (["worker", "--app", "tests.test_cli"], "module:attribute"),
    (["worker", "--app", "tests.test_cli:NOT_AN_APP"], "NOT_AN_APP"),
    (["info", "--config", "/no/such/omniq.yaml"], "/no/such/omniq.yaml"),
    (["worker", "--url", "memory://", "--type", "fancy"], "'fancy'"),
    (["worker", "--url", "memory://", "--log-level", "LOUD"], "'LOUD'"),
    (["worker", "--url", "memory://", "--queues", "bad name"], "'bad name'"),
    (["worker", "--url", "memory://", "--queues", ",,"], "',,'"),
    (["worker", "--url", "memory://", "--concurrency", "0"], "--concurrency"),
    (["worker", "--url", "memory://", "--shutdown-timeout", "-1"], "--shutdown-timeout"),
    (["info", "--url", "memory://", "--config", "x.yaml"], "--url and --config"),
    (["info", "--app", "tests.test_cli:SYNC_APP", "--project", "p"], "--project"),
]


@pytest.mark.parametrize(("args", "named"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_exits_2_with_one_line_naming_the_value(args: list[str], named: str) -> None:
    result = runner.invoke(typer_app, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("omniq: error: ")
    assert named in lines[0]
    assert "Traceback" not in result.output


def test_worker_type_error_lists_the_available_types() -> None:
    result = runner.invoke(typer_app, ["worker", "--url", "memory://", "--type", "fancy"])
    assert result.exit_code == 2
    assert "async" in result.stderr


@pytest.mark.parametrize(
    ("content", "named"),
    [("task_queue: [\n", "not valid YAML"), ("task_queu: memory://\n", "'task_queu'")],
    ids=["syntax", "unknown-key"],
)
def test_bad_yaml_config_exits_2_naming_the_file(tmp_path: Path, content: str, named: str) -> None:
    path = tmp_path / "omniq.yaml"
    path.write_text(content)
    result = runner.invoke(typer_app, ["info", "--config", str(path)])
    assert result.exit_code == 2
    assert str(path) in result.stderr
    assert named in result.stderr


def test_a_password_in_a_bad_url_is_never_printed() -> None:
    result = runner.invoke(typer_app, ["info", "--url", "nosuch://user:hunter2@host/0"])
    assert result.exit_code == 2
    assert "hunter2" not in result.output


# --- backend selection ----------------------------------------------------------------------------


def test_a_config_file_selects_the_backend_and_project(tmp_path: Path) -> None:
    path = tmp_path / "omniq.yaml"
    path.write_text(
        "project_name: from_yaml\n"
        "task_queue:\n  type: memory\n  config:\n    queues: [high, low]\n"
        "worker:\n  type: async\n  config:\n    max_workers: 3\n"
    )
    selected = load_app(AppSource(config=str(path)))
    assert selected.app.project_name == "from_yaml"
    assert selected.app.task_queue.queues == ["high", "low"]
    worker = build_worker(selected.app, WorkerOptions())
    assert worker.queues == ["high", "low"]
    assert worker.concurrency == 3


def test_app_option_unwraps_a_sync_omniq() -> None:
    selected = load_app(AppSource(app="tests.test_cli:SYNC_APP"))
    assert selected.app is SYNC_APP.async_
    assert "tests.test_cli:SYNC_APP" in selected.where


def test_url_option_builds_that_backend_with_the_project() -> None:
    selected = load_app(AppSource(url="memory://", project="proj1"))
    assert selected.app.task_queue.backend_name == "memory"
    assert selected.app.project_name == "proj1"
    assert selected.where == "memory://"


def test_banner_names_queues_concurrency_and_masks_the_password() -> None:
    selected = load_app(AppSource(url="memory://user:hunter2@box"))
    worker = build_worker(selected.app, WorkerOptions(queues=["high", "low"], concurrency=3))
    console = Console(file=io.StringIO(), width=300)
    console.print(banner(selected, worker))
    line = console.file.getvalue()  # type: ignore[attr-defined]
    assert "hunter2" not in line
    assert "***" in line
    assert "high, low" in line
    assert "concurrency 3" in line
    assert worker.worker_id in line


# --- info -----------------------------------------------------------------------------------------


def test_info_json_on_memory_is_valid_json() -> None:
    result = runner.invoke(typer_app, ["info", "--url", "memory://", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "healthy"
    assert data["backend"] == "memory://"
    assert data["queues"] == {}
    assert data["health"]["task_queue"]["status"] == "healthy"


def fill_info_app(monkeypatch: pytest.MonkeyPatch) -> AsyncOmniQ:
    app = AsyncOmniQ(project_name="cli-info", task_queue=AsyncMemoryQueue(queues=["high", "low"]))

    async def fill() -> None:
        await app.enqueue(tasks_fixture.add, args=(1, 2), queue_name="high")
        await app.enqueue(tasks_fixture.add, args=(3, 4), queue_name="high")
        task_id = await app.enqueue(tasks_fixture.add, args=(5, 6), queue_name="low")
        await app.cancel(task_id)

    asyncio.run(fill())
    monkeypatch.setattr(sys.modules[__name__], "INFO_APP", app)
    return app


def test_info_counts_tasks_by_queue_and_status(monkeypatch: pytest.MonkeyPatch) -> None:
    fill_info_app(monkeypatch)
    result = runner.invoke(typer_app, ["info", "--app", "tests.test_cli:INFO_APP", "--json"])
    assert result.exit_code == 0, result.output
    queues = json.loads(result.stdout)["queues"]
    assert queues["high"] == {"size": 2, "total": 2, "counts": {"pending": 2}}
    assert queues["low"] == {"size": 0, "total": 1, "counts": {"cancelled": 1}}


def test_info_table_shows_each_queue_and_the_health(monkeypatch: pytest.MonkeyPatch) -> None:
    fill_info_app(monkeypatch)
    result = runner.invoke(typer_app, ["info", "--app", "tests.test_cli:INFO_APP"])
    assert result.exit_code == 0, result.output
    for text in ("Queues", "high", "low", "pending", "Health", "task_queue", "healthy"):
        assert text in result.stdout


def test_info_shows_rate_limit_buckets_and_concurrency_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = fill_info_app(monkeypatch)
    queue = app.task_queue

    async def use_limits() -> None:
        limit = parse_rate_limit("2/m")  # room for 1, then one per 30 s
        for _ in range(2):
            await queue.take_token("task:tests.tasks_fixture:add", limit)
        await queue.acquire_slot("user:42", "holder-1", 2, 30)

    asyncio.run(use_limits())
    result = runner.invoke(typer_app, ["info", "--app", "tests.test_cli:INFO_APP", "--json"])
    assert result.exit_code == 0, result.output
    limits = json.loads(result.stdout)["limits"]
    [bucket] = limits["buckets"]
    assert (bucket["key"], bucket["rate"]) == ("task:tests.tasks_fixture:add", "2/m")
    assert bucket["tokens"] < 0.5  # the second take found it empty; it refills over 30 s
    assert 15 < bucket["next_token_in"] <= 30
    assert limits["slots"] == [{"key": "user:42", "limit": 2, "running": 1}]

    table = runner.invoke(typer_app, ["info", "--app", "tests.test_cli:INFO_APP"])
    assert table.exit_code == 0, table.output
    for text in ("Limits", "task:tests.tasks_fixture:add", "2/m", "user:42", "1 running"):
        assert text in table.stdout


def test_worker_rate_limit_flag_limits_a_queue_and_refuses_a_bad_one() -> None:
    app = AsyncOmniQ(task_queue=AsyncMemoryQueue(queues=["emails", "default"]))
    options = WorkerOptions(rate_limits=parse_rate_limits(["emails=100/m", " default = 5/s"]))
    worker = build_worker(app, options)
    assert {q: str(r) for q, r in worker.limits.queue_limits.items()} == {
        "emails": "100/m",
        "default": "5/s",
    }
    for bad, named in (("emails", "'emails'"), ("emails=often", "'often'"), ("=1/s", "'=1/s'")):
        result = runner.invoke(typer_app, ["worker", "--url", "memory://", "--rate-limit", bad])
        assert result.exit_code != 0
        assert named in result.output


def test_worker_result_buffer_flag_sizes_the_buffer_and_refuses_a_bad_one() -> None:
    app = AsyncOmniQ(task_queue=AsyncMemoryQueue())
    assert build_worker(app, WorkerOptions(result_buffer=500)).result_buffer == 500
    for bad in ("0", "-3"):
        result = runner.invoke(typer_app, ["worker", "--url", "memory://", "--result-buffer", bad])
        assert result.exit_code != 0
        assert f"--result-buffer must be at least 1, got {bad}" in result.output


# --- info: the live workers ----------------------------------------------------------------------


def _worker_url(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'workers.db'}"
    from tests.conftest import service_address

    host, port = service_address(kind)
    if kind == "redis":
        return f"redis://{host}:{port}/0"
    return f"postgresql://postgres@{host}:{port}/test"


def _worker_info(worker_id: str, **fields: Any) -> WorkerInfo:
    started = utcnow() - timedelta(minutes=3, seconds=5)
    values: dict[str, Any] = {
        "worker_id": worker_id,
        "worker_type": "thread",
        "hostname": "host-a",
        "pid": 4242,
        "queues": ["high", "low"],
        "concurrency": 8,
        "started_at": started,
        "last_seen": started + timedelta(minutes=3),
    }
    return WorkerInfo(**(values | fields))


async def _register(url: str, project: str, *records: tuple[WorkerInfo, float]) -> None:
    """Publishes worker records as running workers do, through the backend's own registry."""
    async with AsyncOmniQ.from_backend(create_backend(url=url, project_name=project)) as app:
        for record, ttl in records:
            await app.task_queue.register_worker(record, ttl)


@pytest.mark.parametrize(
    "kind",
    [
        "sqlite",
        pytest.param("redis", marks=pytest.mark.services("redis")),
        pytest.param("postgres", marks=pytest.mark.services("postgres")),
    ],
)
def test_info_json_lists_the_live_workers_of_the_project(kind: str, tmp_path: Path) -> None:
    url = _worker_url(kind, tmp_path)
    project = f"cli-workers-{uuid.uuid4().hex[:8]}"
    busy = _worker_info(
        "w-busy",
        worker_type="process",
        concurrency=4,
        processed=12,
        succeeded=9,
        failed=3,
        retried=2,
        dead=1,
        running=4,
        state="stopping",
    )
    asyncio.run(
        _register(
            url,
            project,
            (_worker_info("w-idle"), 30),
            (busy, 30),
            (_worker_info("w-gone"), 0.05),  # stopped renewing: not listed
        )
    )
    asyncio.run(_register(url, f"{project}-other", (_worker_info("w-elsewhere"), 30)))
    time.sleep(0.2)

    result = runner.invoke(typer_app, ["info", "--url", url, "--project", project, "--json"])

    assert result.exit_code == 0, result.output
    workers = json.loads(result.stdout)["workers"]
    assert sorted(w["worker_id"] for w in workers) == ["w-busy", "w-idle"]
    row = next(w for w in workers if w["worker_id"] == "w-busy")
    assert {k: row[k] for k in ("worker_type", "hostname", "pid", "queues", "concurrency")} == {
        "worker_type": "process",
        "hostname": "host-a",
        "pid": 4242,
        "queues": ["high", "low"],
        "concurrency": 4,
    }
    stats = ("state", "processed", "succeeded", "failed", "retried", "dead", "running")
    assert {k: row[k] for k in stats} == {
        "state": "stopping",
        "processed": 12,
        "succeeded": 9,
        "failed": 3,
        "retried": 2,
        "dead": 1,
        "running": 4,
    }
    assert row["uptime"] == 180.0
    assert datetime.fromisoformat(row["last_seen"]) == busy.last_seen
    assert datetime.fromisoformat(row["started_at"]) == busy.started_at


def test_info_table_shows_each_worker_with_its_stats(tmp_path: Path) -> None:
    url = _worker_url("sqlite", tmp_path)
    record = _worker_info(
        "w-table-1", worker_type="gevent", processed=31, succeeded=30, dead=1, running=2
    )
    record.started_at = utcnow() - timedelta(minutes=3, seconds=4)
    record.last_seen = record.started_at + timedelta(minutes=3)
    asyncio.run(_register(url, "cli-table", (record, 30)))

    result = runner.invoke(typer_app, ["info", "--url", url, "--project", "cli-table"])

    assert result.exit_code == 0, result.output
    out = result.stdout
    # CliRunner's console is 80 columns wide: the table must fit it without cutting values
    for text in (
        "Workers",
        "w-table-1",
        "gevent",
        "host-a/4242",
        "high, low",
        "running",
        "2/8 busy",
        "31",
        "30 ok, 1 dead",
        "3m00s",
    ):
        assert text in out, f"{text!r} not in:\n{out}"
    seen = re.search(r"(\d+)s ago", out)
    assert seen is not None, out
    assert int(seen.group(1)) >= 4


def test_info_shows_a_worker_cut_off_from_a_store(tmp_path: Path) -> None:
    """A worker's circuit breakers that are not closed, and the finished tasks it keeps, in the
    table and in ``--json``; this command's own breakers are in ``--json`` too."""
    url = _worker_url("sqlite", tmp_path)
    record = _worker_info("w-cut-off", breakers={"queue": "closed", "results": "open"}, buffered=37)
    asyncio.run(_register(url, "cli-breakers", (record, 30)))

    result = runner.invoke(typer_app, ["info", "--url", url, "--project", "cli-breakers"])
    assert result.exit_code == 0, result.output
    assert "breaker results open" in result.stdout, result.stdout
    assert "37 results buffered" in result.stdout, result.stdout
    assert "queue closed" not in result.stdout

    data = json.loads(
        runner.invoke(
            typer_app, ["info", "--url", url, "--project", "cli-breakers", "--json"]
        ).stdout
    )
    (row,) = data["workers"]
    assert row["breakers"] == {"queue": "closed", "results": "open"}
    assert row["buffered"] == 37
    assert {role: b["state"] for role, b in data["breakers"].items()} == {
        "queue": "closed",
        "results": "closed",
    }


def test_info_says_when_no_worker_is_live(tmp_path: Path) -> None:
    url = _worker_url("sqlite", tmp_path)
    result = runner.invoke(typer_app, ["info", "--url", url, "--project", "cli-nobody"])
    assert result.exit_code == 0, result.output
    assert "no live workers" in result.stdout
    data = json.loads(
        runner.invoke(typer_app, ["info", "--url", url, "--project", "cli-nobody", "--json"]).stdout
    )
    assert data["workers"] == []


def test_info_lists_the_workers_of_an_app_given_with_app(monkeypatch: pytest.MonkeyPatch) -> None:
    app = fill_info_app(monkeypatch)
    asyncio.run(app.task_queue.register_worker(_worker_info("w-in-app"), 30))

    result = runner.invoke(typer_app, ["info", "--app", "tests.test_cli:INFO_APP", "--json"])

    assert result.exit_code == 0, result.output
    assert [w["worker_id"] for w in json.loads(result.stdout)["workers"]] == ["w-in-app"]


def test_info_on_a_backend_without_a_worker_registry_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = fill_info_app(monkeypatch)

    # a backend declares what it offers: this one says it keeps no worker registry
    offered = app.task_queue.capabilities() - {Capability.WORKERS}
    monkeypatch.setattr(app.task_queue, "supports", lambda capability: capability in offered)

    as_json = runner.invoke(typer_app, ["info", "--app", "tests.test_cli:INFO_APP", "--json"])
    table = runner.invoke(typer_app, ["info", "--app", "tests.test_cli:INFO_APP"])

    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["workers"] is None
    assert table.exit_code == 0, table.output
    assert "keeps no worker registry" in table.stdout
    assert "Queues" in table.stdout  # the rest of the report is still there


# --- the worker and its signals (in process, real signals to this process) -----------------------


async def start_serving(
    app: AsyncOmniQ, **options: Any
) -> tuple[asyncio.Task[WorkerOutcome], io.StringIO]:
    out = io.StringIO()
    serving = asyncio.create_task(
        serve(Selected(app, "memory://"), WorkerOptions(**options), Console(file=out, width=300))
    )
    await eventually(lambda: _truthy("omniq worker" in out.getvalue()), "the start banner")
    return serving, out


async def _truthy(value: bool) -> bool:
    return value


async def test_sigterm_lets_a_running_task_finish_then_exits_0() -> None:
    app = memory_app()
    serving, out = await start_serving(app, queues=["default"])
    task_id = await app.enqueue(tasks_fixture.async_sleep, args=(0.3,))
    await eventually(
        lambda: _is(status_of(app, task_id), TaskStatus.RUNNING), "the task to be running"
    )
    os.kill(os.getpid(), signal.SIGTERM)
    outcome = await serving
    assert outcome == WorkerOutcome(0, forced=False, stats=outcome.stats)
    assert outcome.stats["succeeded"] == 1
    assert await status_of(app, task_id) is TaskStatus.SUCCESS
    assert "SIGTERM" in out.getvalue()


async def test_sigint_hands_back_a_task_that_outlives_the_grace_period() -> None:
    app = memory_app()
    serving, _ = await start_serving(app, shutdown_timeout=0.2)
    task_id = await app.enqueue(tasks_fixture.async_sleep, args=(30,))
    await eventually(
        lambda: _is(status_of(app, task_id), TaskStatus.RUNNING), "the task to be running"
    )
    os.kill(os.getpid(), signal.SIGINT)
    outcome = await serving
    assert outcome.code == 0
    assert not outcome.forced
    task = await app.get_task(task_id)
    assert task is not None
    assert task.status is TaskStatus.PENDING  # handed back, not lost
    assert task.attempts == 0  # the interrupted attempt does not count


async def test_a_second_signal_stops_at_once_and_hands_back() -> None:
    app = memory_app()
    serving, out = await start_serving(app, shutdown_timeout=600)
    task_id = await app.enqueue(tasks_fixture.async_sleep, args=(30,))
    await eventually(
        lambda: _is(status_of(app, task_id), TaskStatus.RUNNING), "the task to be running"
    )
    os.kill(os.getpid(), signal.SIGTERM)
    await eventually(lambda: _truthy("stopped claiming" in out.getvalue()), "the first signal")
    os.kill(os.getpid(), signal.SIGTERM)
    outcome = await serving
    assert outcome.forced
    assert outcome.code == 128 + signal.SIGTERM
    assert await status_of(app, task_id) is TaskStatus.PENDING


async def test_a_signal_handler_is_removed_when_the_worker_returns() -> None:
    before = signal.getsignal(signal.SIGTERM)
    app = memory_app()
    serving, _ = await start_serving(app)
    os.kill(os.getpid(), signal.SIGTERM)
    await serving
    assert signal.getsignal(signal.SIGTERM) == before


async def test_worker_on_an_app_module_runs_its_registered_tasks() -> None:
    selected = load_app(AppSource(app="tests.test_cli:SYNC_APP"))
    app = selected.app
    out = io.StringIO()
    serving = asyncio.create_task(
        serve(selected, WorkerOptions(concurrency=2), Console(file=out, width=300))
    )
    task_id = await app.enqueue("cli-greet", args=("ada",))
    assert await app.get_result(task_id, timeout=20) == "hello ada"
    os.kill(os.getpid(), signal.SIGTERM)
    assert (await serving).code == 0
    assert "queues high, low" in out.getvalue()


async def _is(status: Awaitable[TaskStatus | None], wanted: TaskStatus) -> bool:
    return await status is wanted


# --- the demo -------------------------------------------------------------------------------------


async def test_demo_on_memory_ends_every_task_as_expected() -> None:
    out = io.StringIO()
    code = await run_demo(build_app("memory://"), console=Console(file=out, width=200))
    text = out.getvalue()
    assert code == 0, text
    assert "All 8 tasks ended as expected" in text
    for name in ("resize_image", "fetch_page", "build_report", "charge_card", "import_file"):
        assert name in text
    assert "dead 1" in text  # the events summary


async def test_demo_exits_1_and_names_a_task_that_ended_unexpectedly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def wrong_plan(run_id: str) -> list[Step]:
        steps = plan(run_id)
        steps[0].expect = "not what resize_image returns"
        return steps

    monkeypatch.setattr("omniq.demo.plan", wrong_plan)
    out = io.StringIO()
    code = await run_demo(build_app("memory://"), console=Console(file=out, width=300))
    assert code == 1
    assert "1 of 8 tasks did not end as expected: resize_image" in out.getvalue()


def test_omniq_demo_exits_0_as_a_user_runs_it(tmp_path: Path) -> None:
    # in a fresh directory, as on a fresh machine: the embedded default backend lives there
    done = subprocess.run(
        [sys.executable, "-m", "omniq", "demo"],
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All 8 tasks ended as expected" in done.stdout
    assert "Traceback" not in done.stderr


def test_omniq_demo_runs_twice_on_the_same_sqlite_directory(tmp_path: Path) -> None:
    pytest.importorskip("omniq.backend.sqlite", reason="the SQLite backend is not in this tree yet")
    for _ in range(2):  # the second run meets the first run's data in ./.omniq
        done = subprocess.run(
            [sys.executable, "-m", "omniq", "demo"],
            cwd=tmp_path,
            env=subprocess_env(OMNIQ_TASK_QUEUE_TYPE="sqlite"),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "from the sqlite event store" in done.stdout


# --- a worker in another process ------------------------------------------------------------------


def start_worker_process(cwd: Path, *args: str) -> subprocess.Popen[str]:
    """A worker by URL, told that it runs the functions of the tests' task module."""
    return subprocess.Popen(
        [sys.executable, "-m", "omniq", "worker", "--include", tasks_fixture.__name__, *args],
        cwd=cwd,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop_process(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, str]:
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"the worker did not stop on {sig}: {err}") from None
    return proc.returncode, err


def wait_for_banner(proc: subprocess.Popen[str]) -> str:
    assert proc.stderr is not None
    line = proc.stderr.readline()  # the banner is the first line the worker prints
    assert line.startswith("omniq worker"), line
    return line


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_idle_worker_process_exits_0_on_a_stop_signal(tmp_path: Path, sig: int) -> None:
    proc = start_worker_process(tmp_path, "--url", "memory://", "--queues", "high,low")
    banner_line = wait_for_banner(proc)
    assert "queues high, low" in banner_line
    code, err = stop_process(proc, sig)
    assert code == 0, err
    assert "stopped" in err


def sqlite_url() -> str:
    pytest.importorskip(
        "omniq.backend.sqlite", reason="the SQLite backend is not part of this tree yet"
    )
    return "sqlite:///jobs.db"  # relative: the test and the worker both run in tmp_path


def test_info_lists_a_running_worker_process_until_it_stops(tmp_path: Path) -> None:
    """End to end: a real ``omniq worker`` publishes itself, ``omniq info`` lists it with what it
    did (renewed every upkeep round: up to ``recover_interval`` late), and the record goes when
    the worker stops."""
    worker_type = "process"
    url = f"sqlite:///{tmp_path / 'live.db'}"
    asyncio.run(_enqueue_adds(url, "cli-live", 3))
    proc = start_worker_process(
        tmp_path, "--url", url, "--project", "cli-live", "--type", worker_type, "--concurrency", "2"
    )
    try:
        wait_for_banner(proc)
        deadline = time.monotonic() + 60
        while True:
            info = runner.invoke(
                typer_app, ["info", "--url", url, "--project", "cli-live", "--json"]
            )
            workers = json.loads(info.stdout)["workers"]
            if (workers and workers[0]["succeeded"] == 3) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        [worker] = workers
        assert worker["pid"] == proc.pid
        assert worker["worker_type"] == worker_type
        assert worker["concurrency"] == 2
        assert (worker["processed"], worker["succeeded"], worker["state"]) == (3, 3, "running")
        table = runner.invoke(typer_app, ["info", "--url", url, "--project", "cli-live"])
        assert worker["worker_id"] in table.stdout
    finally:
        code, err = stop_process(proc)
    assert code == 0, err
    after = runner.invoke(typer_app, ["info", "--url", url, "--project", "cli-live", "--json"])
    assert json.loads(after.stdout)["workers"] == []


async def _enqueue_adds(url: str, project: str, n: int) -> None:
    async with AsyncOmniQ.from_backend(create_backend(url=url, project_name=project)) as app:
        for i in range(n):
            await app.enqueue(tasks_fixture.add, args=(i, i))


async def test_worker_on_sqlite_runs_tasks_and_stops_gracefully_on_sigterm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = sqlite_url()
    monkeypatch.chdir(tmp_path)
    async with AsyncOmniQ.from_backend(_backend(url, "cli-sqlite")) as app:
        quick = [await app.enqueue(tasks_fixture.add, args=(i, i)) for i in range(5)]
        proc = start_worker_process(tmp_path, "--url", url, "--project", "cli-sqlite")
        try:
            for i, task_id in enumerate(quick):
                assert await app.get_result(task_id, timeout=30) == 2 * i
            slow = await app.enqueue(tasks_fixture.async_sleep, args=(1.0,))
            await eventually(
                lambda: _is(status_of(app, slow), TaskStatus.RUNNING), "the slow task to run"
            )
            code, err = await asyncio.to_thread(stop_process, proc)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert code == 0, err
        # SIGTERM arrived while it ran: it finished within the grace period
        assert await status_of(app, slow) is TaskStatus.SUCCESS
        assert await app.get_result(slow, timeout=0) == "slept"


async def test_worker_on_sqlite_hands_back_a_running_task_on_sigterm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = sqlite_url()
    monkeypatch.chdir(tmp_path)
    async with AsyncOmniQ.from_backend(_backend(url, "cli-sqlite")) as app:
        proc = start_worker_process(
            tmp_path, "--url", url, "--project", "cli-sqlite", "--shutdown-timeout", "0.2"
        )
        try:
            slow = await app.enqueue(tasks_fixture.async_sleep, args=(60,))
            await eventually(
                lambda: _is(status_of(app, slow), TaskStatus.RUNNING), "the slow task to run"
            )
            code, err = await asyncio.to_thread(stop_process, proc)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert code == 0, err
        task = await app.get_task(slow)
        assert task is not None
        assert task.status is TaskStatus.PENDING  # handed back for the next worker: not lost
        assert task.attempts == 0


def _backend(url: str, project: str) -> Any:
    from omniq.backend import create_backend

    return create_backend(url=url, project_name=project)


async def test_worker_on_sqlite_stops_at_once_on_a_second_sigterm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = sqlite_url()
    monkeypatch.chdir(tmp_path)
    async with AsyncOmniQ.from_backend(_backend(url, "cli-sqlite")) as app:
        proc = start_worker_process(tmp_path, "--url", url, "--project", "cli-sqlite")
        try:
            # a sync task blocks a thread, which no signal can stop: the worker must not wait
            slow = await app.enqueue(tasks_fixture.sync_sleep, args=(300,))
            await eventually(
                lambda: _is(status_of(app, slow), TaskStatus.RUNNING), "the slow task to run"
            )
            proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(read_until, proc, "stopped claiming")
            code, err = await asyncio.to_thread(stop_process, proc)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert code == 128 + signal.SIGTERM, err
        assert "stopped at once" in err
        assert await status_of(app, slow) is TaskStatus.PENDING  # handed back, not lost


def read_until(proc: subprocess.Popen[str], text: str) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:
        if text in line:
            return
    raise AssertionError(f"the worker ended without printing {text!r}")


# --- info: queues nobody serves ------------------------------------------------------------------


def test_info_names_a_queue_with_waiting_tasks_that_no_live_worker_serves(tmp_path: Path) -> None:
    url = _worker_url("sqlite", tmp_path)
    project = "cli-unserved"

    async def fill() -> None:
        async with AsyncOmniQ.from_backend(create_backend(url=url, project_name=project)) as app:
            await app.enqueue(tasks_fixture.add, args=(1, 2), queue_name="reports")
            await app.enqueue(tasks_fixture.add, args=(1, 2), queue_name="reports")
            await app.enqueue(tasks_fixture.add, args=(1, 2), queue_name="high")
            await app.task_queue.register_worker(_worker_info("w-high", queues=["high"]), 30)

    asyncio.run(fill())

    table = runner.invoke(typer_app, ["info", "--url", url, "--project", project])
    data = json.loads(
        runner.invoke(typer_app, ["info", "--url", url, "--project", project, "--json"]).stdout
    )

    assert table.exit_code == 0, table.output
    text = " ".join(table.stdout.split())  # a narrow terminal wraps the line
    assert "no live worker serves queue 'reports' (2 waiting)" in text
    assert "omniq worker --queues reports" in text
    assert "queue 'high'" not in text
    assert data["unserved"] == ["reports"]
