"""``omniq worker`` without typer (``omniq.cli.fast``): a plain command line means what typer
would make of it, anything else is left to typer, and the worker process never imports typer,
rich or pydantic on its way to its first task."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import pytest
import typer.main

from omniq.cli import app as typer_app
from omniq.cli.fast import WorkerArgs, parse_worker_args
from tests import tasks_fixture
from tests.test_cli import stop_process, subprocess_env, wait_for_banner

PLAIN = [
    [],
    ["--url", "sqlite:///x.db"],
    ["-u", "redis://h:6379/0", "-p", "proj", "-q", "high,low", "-n", "20", "-t", "thread"],
    ["--url=postgresql://u@h/db", "--project=p", "--events", "--concurrency=3"],
    ["-c", "omniq.yaml", "--log-level", "DEBUG", "--shutdown-timeout", "2.5"],
    ["-a", "mod:oq", "-I", "a.tasks", "--include", "b.tasks,c.tasks", "--include=d"],
    ["--metrics-port", "9100", "--metrics-host", "0.0.0.0", "--metrics-interval", "1e1"],
    ["--type", "process", "--concurrency", "+4", "--shutdown-timeout", ".5"],
    ["--queues", "a", "--queues", "b", "-l", "INFO", "-l", "WARNING"],  # the last one wins
    ["--rate-limit", "emails=100/m", "--rate-limit=default=5/s"],
    ["--result-buffer", "500"],
]


def typer_reading(argv: list[str]) -> dict[str, Any]:
    """The parameters typer's ``worker`` command is called with for ``argv``."""
    command = typer.main.get_command(typer_app)
    worker = command.commands["worker"]  # type: ignore[attr-defined]
    context = worker.make_context("worker", list(argv))
    params = dict(context.params)
    for name in ("include", "rate_limit"):
        params[name] = list(params[name]) if params[name] else None
    return params


@pytest.mark.parametrize("argv", PLAIN, ids=[" ".join(a) or "bare" for a in PLAIN])
def test_a_plain_command_line_is_read_as_typer_reads_it(argv: list[str]) -> None:
    parsed = parse_worker_args(argv)

    assert parsed is not None
    assert asdict(parsed) == typer_reading(argv)


def test_every_option_of_the_typer_command_is_known() -> None:
    command = typer.main.get_command(typer_app)
    worker = command.commands["worker"]  # type: ignore[attr-defined]
    names = {p.name for p in worker.params}

    assert names == {f.name for f in fields(WorkerArgs)}


LEFT_TO_TYPER = [
    ["--help"],
    ["-h"],
    ["--url"],  # no value
    ["--url", "--project", "p"],  # a value that looks like an option
    ["--concurrency", "many"],
    ["--concurrency", "1.5"],
    ["--shutdown-timeout", "-1"],
    ["--shutdown-timeout", "nan"],
    ["--metrics-port", "0x10"],
    ["--events=yes"],
    ["--unknown", "x"],
    ["-n5"],
    ["extra"],
    ["--", "--url", "x"],
    ["--version"],
]


@pytest.mark.parametrize("argv", LEFT_TO_TYPER, ids=[" ".join(a) for a in LEFT_TO_TYPER])
def test_anything_but_a_plain_command_line_is_left_to_typer(argv: list[str]) -> None:
    assert parse_worker_args(argv) is None


WORKER = (sys.executable, "-m", "omniq", "worker")
IMPORTTIME_WORKER = (sys.executable, "-X", "importtime", *WORKER[1:], "--url", "memory://")


def test_a_worker_process_starts_without_typer_rich_or_pydantic(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*IMPORTTIME_WORKER, "--include", tasks_fixture.__name__, "--log-level", "WARNING"],
        cwd=tmp_path,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    imported: set[str] = set()
    assert proc.stderr is not None
    while True:  # -X importtime writes each import to stderr, before the banner
        line = proc.stderr.readline()
        assert line, "the worker exited before its banner"
        if not line.startswith("import time:"):
            break
        imported.add(line.rsplit("|", 1)[-1].strip())
    assert line.startswith("omniq worker"), line
    code, err = stop_process(proc)

    assert code == 0, err
    assert "omniq.cli.fast" in imported
    assert not {"typer", "rich", "pydantic", "click", "anyio"} & imported


def test_the_banner_is_plain_text_when_stderr_is_no_terminal(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*WORKER, "--url", "memory://", "--queues", "a,b", "--include", tasks_fixture.__name__],
        cwd=tmp_path,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = wait_for_banner(proc)
    code, err = stop_process(proc)

    assert code == 0, err
    assert "\x1b[" not in line + err
    assert " · memory:// · project default · queues a, b · async, concurrency " in line


def test_a_bad_value_on_the_fast_path_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "omniq", "worker", "--url", "memory://", "--concurrency", "0"],
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "omniq: error: --concurrency must be at least 1, got 0"
    ]


def test_a_command_line_typer_refuses_still_gets_typer_s_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "omniq", "worker", "--concurrency", "many"],
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "Usage: omniq worker" in result.stderr
    assert "Invalid value for '--concurrency'" in result.stderr
