"""``omniq worker`` without typer: the command's work, and a parser for its plain command lines.

A worker's start is on the clock (a supervisor restarting it, a deploy scaling out): importing
typer costs about 0.3 s, and parsing with it another 0.2 s (pydantic, for its type adapters),
more than the rest of the start to the first task. So the console script hands an ``omniq
worker`` command line to :func:`parse_worker_args` first. It understands exactly the options of
the typer command (``omniq.cli.commands.worker``), written as ``--opt value``, ``--opt=value`` or
``-o value``, and answers None for anything else: ``--help``, an option it does not know, a
value that is not plainly a number where one is expected, a flag with a value. Those go to
typer, so help, usage errors and their messages stay typer's own. Both paths then run
:func:`run_worker`.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

T = TypeVar("T")


@dataclass
class WorkerArgs:
    """The options of ``omniq worker``, as typed (the typer command's parameters)."""

    url: str | None = None
    config: str | None = None
    app_spec: str | None = None
    project: str | None = None
    events: bool = False
    queues: str | None = None
    concurrency: int | None = None
    worker_type: str | None = None
    shutdown_timeout: float = 30.0
    log_level: str | None = None
    include: list[str] | None = None
    rate_limit: list[str] | None = None
    result_buffer: int | None = None
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    metrics_interval: float = 15.0


#: option spelling -> (field, kind); kinds: str, int, float, list (repeatable), flag
_OPTIONS: dict[str, tuple[str, str]] = {}
for _names, _field, _kind in (
    (("--url", "-u"), "url", "str"),
    (("--config", "-c"), "config", "str"),
    (("--app", "-a"), "app_spec", "str"),
    (("--project", "-p"), "project", "str"),
    (("--events",), "events", "flag"),
    (("--queues", "-q"), "queues", "str"),
    (("--concurrency", "-n"), "concurrency", "int"),
    (("--type", "-t"), "worker_type", "str"),
    (("--shutdown-timeout",), "shutdown_timeout", "float"),
    (("--log-level", "-l"), "log_level", "str"),
    (("--include", "-I"), "include", "list"),
    (("--rate-limit",), "rate_limit", "list"),
    (("--result-buffer",), "result_buffer", "int"),
    (("--metrics-port",), "metrics_port", "int"),
    (("--metrics-host",), "metrics_host", "str"),
    (("--metrics-interval",), "metrics_interval", "float"),
):
    for _name in _names:
        _OPTIONS[_name] = (_field, _kind)

_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


def parse_worker_args(argv: Sequence[str]) -> WorkerArgs | None:
    """The options of ``omniq worker`` (``argv`` after ``worker``), or None when the command
    line is anything but plain (see the module docstring): typer then parses it."""
    values: dict[str, Any] = {}
    lists: dict[str, list[str]] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, attached = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        spec = _OPTIONS.get(name)
        if spec is None:
            return None  # --help, an unknown option, a positional argument, "-n5", "--"
        target, kind = spec
        if kind == "flag":
            if eq:
                return None
            values[target] = True
            i += 1
            continue
        if eq:
            value = attached
            i += 1
        elif i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            value = argv[i + 1]
            i += 2
        else:
            return None  # a missing value, or one that looks like an option: typer says which
        if kind == "int":
            if not _INT.fullmatch(value):
                return None
            values[target] = int(value)
        elif kind == "float":
            if not _FLOAT.fullmatch(value):
                return None
            values[target] = float(value)
        elif kind == "list":
            lists.setdefault(target, []).append(value)
        else:
            values[target] = value
    values.update(lists)
    return WorkerArgs(**values)


def fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr, no traceback, and the exit status."""
    print(f"omniq: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def run_guarded(make: Callable[[], T]) -> T:
    """Turns the problems a user can cause or meet into one line and an exit status."""
    from omniq.cli.source import BackendProblem, UsageProblem

    try:
        return make()
    except UsageProblem as exc:
        fail(str(exc), 2)
    except BackendProblem as exc:
        fail(str(exc), 1)


def configure_console_logging(level: str | None) -> None:
    """Logging to the console at ``level`` (None: the settings'); a bad level is one line."""
    from omniq.config import configure_logging
    from omniq.config.env import normalize_log_level
    from omniq.config.logging import console_handler
    from omniq.exceptions import OmniQError

    if level is not None:
        try:
            level = normalize_log_level(level)
        except ValueError as exc:
            fail(f"--log-level {level!r} {exc}")
    try:
        configure_logging(level, handler=console_handler())
    except OmniQError as exc:
        fail(str(exc))


def run_worker(args: WorkerArgs) -> NoReturn:
    """Runs a worker until SIGINT/SIGTERM and exits with its status (see ``omniq.cli.worker``)."""
    import asyncio

    from omniq.cli.source import AppSource, load_app, make_cwd_importable
    from omniq.cli.worker import (
        WorkerOptions,
        metrics_options,
        parse_queues,
        parse_rate_limits,
        serve,
        task_threads_alive,
    )
    from omniq.registry import module_names

    if args.shutdown_timeout < 0:
        fail(f"--shutdown-timeout must be >= 0, got {args.shutdown_timeout:g}")
    log_level = args.log_level
    # a worker's console exists to say what happens: INFO unless the environment chose a level
    if log_level is None and not os.environ.get("OMNIQ_LOG_LEVEL"):
        log_level = "INFO"
    configure_console_logging(log_level)
    make_cwd_importable()  # tasks named by import path resolve from the project's root
    source = AppSource(
        url=args.url,
        config=args.config,
        app=args.app_spec,
        project=args.project,
        events=args.events,
    )
    options = WorkerOptions(
        queues=run_guarded(lambda: parse_queues(args.queues)),
        concurrency=args.concurrency,
        worker_type=args.worker_type,
        shutdown_timeout=args.shutdown_timeout,
        include=module_names(args.include),
        rate_limits=run_guarded(lambda: parse_rate_limits(args.rate_limit)),
        result_buffer=args.result_buffer,
        metrics=run_guarded(
            lambda: metrics_options(args.metrics_port, args.metrics_host, args.metrics_interval)
        ),
    )
    selected = run_guarded(lambda: load_app(source))
    with asyncio.Runner() as runner:
        outcome = run_guarded(lambda: runner.run(serve(selected, options)))
        if outcome.forced and task_threads_alive():
            # A sync task still runs in a thread that cannot be killed; its task was already
            # handed back, and waiting for it is exactly what a second signal asks us not to do.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(outcome.code)
    raise SystemExit(outcome.code)


__all__ = [
    "WorkerArgs",
    "configure_console_logging",
    "fail",
    "parse_worker_args",
    "run_guarded",
    "run_worker",
]
