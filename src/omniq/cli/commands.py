"""The ``omniq`` command: ``worker``, ``scheduler``, ``info`` and ``demo``.

Commands only parse options, pick the application (:mod:`omniq.cli.source`) and print; the work is
in :mod:`omniq.cli.worker`, :mod:`omniq.cli.info` and :mod:`omniq.demo`. A mistake in what the user
typed or in a file they named is one line on stderr naming the bad value, and exit status 2; a
backend that cannot be reached is one line and exit status 1. Only a bug shows a traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from omniq import __version__
from omniq._redact import redact_text
from omniq.cli.fast import WorkerArgs, run_guarded, run_worker
from omniq.cli.fast import configure_console_logging as _configure_logging
from omniq.cli.source import (
    AppSource,
    BackendProblem,
    Selected,
    UsageProblem,
    load_app,
    make_cwd_importable,
)
from omniq.cli.worker import stop_signals
from omniq.exceptions import OmniQError
from omniq.queue.scheduler import AsyncScheduler

T = TypeVar("T")

app = typer.Typer(
    name="omniq",
    help="OmniQ: an async-first task queue. Run workers, inspect queues, try the demo.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    # plain help text: in "rich" markup mode typer keeps a docstring's line breaks in the command
    # list, cutting a summary mid-sentence; without markup, lines of one paragraph are joined
    rich_markup_mode="markdown",
)

#: one example per backend; the help shows those the registry has
_URL_EXAMPLES = (
    "memory://",
    "sqlite:///path.db",
    "postgresql://user:pw@host/db",
    "redis://host:6379/0",
    "nats://host:4222",
    "file:///dir",
)


def url_examples() -> list[str]:
    """The examples whose scheme selects a backend of this version (the registry knows it; read
    without importing any backend or driver, so ``--help`` stays fast)."""
    import omniq.backend

    shown = []
    for example in _URL_EXAMPLES:
        try:
            omniq.backend.type_from_url(example)
        except OmniQError:
            continue  # a scheme this version does not know
        shown.append(example)
    return shown


URL_HELP = f"Backend URL: {', '.join(url_examples())}."
UrlOption = Annotated[str | None, typer.Option("--url", "-u", help=URL_HELP, show_default=False)]
ConfigOption = Annotated[
    str | None,
    typer.Option("--config", "-c", help="YAML config file (project_name, task_queue, ...).",
                 show_default=False),
]  # fmt: skip
AppOption = Annotated[
    str | None,
    typer.Option("--app", "-a", help="Your OmniQ/AsyncOmniQ instance, as 'module:attribute'.",
                 show_default=False),
]  # fmt: skip
ProjectOption = Annotated[
    str | None,
    typer.Option("--project", "-p", help="Project namespace with --url or the default backend.",
                 show_default=False),
]  # fmt: skip
EventsOption = Annotated[
    bool, typer.Option("--events", help="With --url: also record task events in that backend.")
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"omniq {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", help="Show the version and exit.", is_eager=True, callback=_version
        ),
    ] = False,
) -> None:
    """OmniQ: an async-first task queue. Run workers, inspect queues, try the demo."""


@app.command()
def worker(
    url: UrlOption = None,
    config: ConfigOption = None,
    app_spec: AppOption = None,
    project: ProjectOption = None,
    events: EventsOption = False,
    queues: Annotated[
        str | None,
        typer.Option(
            "--queues",
            "-q",
            help="Queues to serve, highest priority first "
            "(e.g. high,medium,low). Default: the task queue's queues, else 'default'.",
            show_default=False,
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            "-n",
            help="Tasks running at once (default: settings).",
            show_default=False,
        ),
    ] = None,
    worker_type: Annotated[
        str | None,
        typer.Option(
            "--type",
            "-t",
            help="Worker type (async, thread, process, ... as "
            "installed; default: settings DEFAULT_WORKER).",
            show_default=False,
        ),
    ] = None,
    shutdown_timeout: Annotated[
        float,
        typer.Option(
            "--shutdown-timeout",
            help="Seconds running tasks get to finish after "
            "SIGINT/SIGTERM before they are handed back.",
        ),
    ] = 30.0,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            "-l",
            help="DEBUG (every task), INFO (failures and a summary; the default unless "
            "OMNIQ_LOG_LEVEL says otherwise), WARNING, ERROR or DISABLED.",
            show_default=False,
        ),
    ] = None,
    include: Annotated[
        list[str] | None,
        typer.Option(
            "--include",
            "-I",
            help="Module(s) whose functions this worker may run, imported at start "
            "(repeat or comma-separate; also OMNIQ_TASK_MODULES). @task functions of the --app "
            "module need none. Other functions are refused.",
            show_default=False,
        ),
    ] = None,
    rate_limit: Annotated[
        list[str] | None,
        typer.Option(
            "--rate-limit",
            help="A queue's rate limit, shared with every worker given the same: QUEUE=RATE "
            "(e.g. emails=100/m; per s, m, h or d; repeat for several queues).",
            show_default=False,
        ),
    ] = None,
    result_buffer: Annotated[
        int | None,
        typer.Option(
            "--result-buffer",
            help="Finished tasks kept in memory while the result store is away, written when "
            "it is back; when full the worker claims nothing more (default: "
            "OMNIQ_RESULT_BUFFER, 10000).",
            show_default=False,
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            help="Serve Prometheus metrics on this port (http://HOST:PORT/metrics; needs "
            "omniq-tasks[metrics]).",
            show_default=False,
        ),
    ] = None,
    metrics_host: Annotated[
        str,
        typer.Option(
            "--metrics-host",
            help="Address the metrics are served on (0.0.0.0 for a Prometheus on another host).",
        ),
    ] = "127.0.0.1",
    metrics_interval: Annotated[
        float,
        typer.Option(
            "--metrics-interval",
            help="Seconds between two readings of queue depth and live workers from the store.",
        ),
    ] = 15.0,
) -> None:
    """Run a worker until SIGINT/SIGTERM; a second signal stops at once."""  # fmt: skip
    run_worker(
        WorkerArgs(
            url=url,
            config=config,
            app_spec=app_spec,
            project=project,
            events=events,
            queues=queues,
            concurrency=concurrency,
            worker_type=worker_type,
            shutdown_timeout=shutdown_timeout,
            log_level=log_level,
            include=include,
            rate_limit=rate_limit,
            result_buffer=result_buffer,
            metrics_port=metrics_port,
            metrics_host=metrics_host,
            metrics_interval=metrics_interval,
        )
    )


@app.command()
def scheduler(
    url: UrlOption = None,
    config: ConfigOption = None,
    app_spec: AppOption = None,
    project: ProjectOption = None,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level", "-l", help="DEBUG, INFO, WARNING, ERROR or DISABLED.", show_default=False
        ),
    ] = None,
) -> None:
    """Run a scheduler loop alone until SIGINT/SIGTERM.

    It enqueues the due occurrences of the stored schedules. Any number may run beside the
    workers' own loops; each occurrence is enqueued exactly once."""  # fmt: skip
    _configure_logging(log_level)
    make_cwd_importable()
    selected = run_guarded(
        lambda: load_app(AppSource(url=url, config=config, app=app_spec, project=project))
    )
    run_guarded(lambda: _run(_guard_backend(_serve_scheduler(selected))))


async def _serve_scheduler(selected: Selected) -> None:
    stop = asyncio.Event()
    with stop_signals(lambda _signum: stop.set()):
        async with selected.app as app:
            loop = AsyncScheduler(app.task_queue)
            loop.start()
            Console(stderr=True).print(f"omniq scheduler · {selected.where} · Ctrl-C to stop")
            try:
                await stop.wait()
            finally:
                await loop.stop()


@app.command()
def info(
    url: UrlOption = None,
    config: ConfigOption = None,
    app_spec: AppOption = None,
    project: ProjectOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Show queues, live workers and health; exit 1 when unhealthy.

    Each queue shows its waiting tasks and its tasks counted by status. A database file that does
    not exist is reported as "not created", and left so."""  # fmt: skip
    # here, not at the top: its tables are no part of a worker's start
    from omniq.cli.info import NOT_CREATED, collect, not_created, print_info, to_json

    source = AppSource(url=url, config=config, app=app_spec, project=project)
    selected = run_guarded(lambda: load_app(source))
    missing = _missing_database(selected.app)
    data = (
        run_guarded(lambda: _run(collect(selected)))
        if missing is None
        else not_created(selected, missing)
    )
    if as_json:
        typer.echo(to_json(data))
    else:
        print_info(data, Console())
    raise typer.Exit(0 if data["status"] in ("healthy", NOT_CREATED) else 1)


@app.command()
def demo(
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            "-u",
            help="Run it on this backend instead of the default one.",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for every task to finish.")
    ] = 30.0,
) -> None:
    """Run a mix of tasks end to end on the default backend, with live progress.

    Exits 0 only if every task ended as expected.
    """
    from omniq.demo import build_app, run_demo

    def build() -> Any:
        try:
            return build_app(url)
        except (OmniQError, ValueError, TypeError) as exc:
            raise UsageProblem(str(exc)) from None

    built = run_guarded(build)
    code = run_guarded(lambda: _run(_guard_backend(run_demo(built, timeout=timeout))))
    raise typer.Exit(code)


async def _guard_backend(work: Coroutine[Any, Any, T]) -> T:
    """A backend that fails under the command (unreachable, refusing) is exit status 1."""
    try:
        return await work
    except (OmniQError, OSError) as exc:
        raise BackendProblem(f"{type(exc).__name__}: {redact_text(str(exc))}") from None


def _missing_database(app: Any) -> Path | None:
    """The database file a store of ``app`` would create on connecting (SQLite's, named by its
    ``path``), if it does not exist: reading must not leave an empty database behind."""
    for store in (app.task_queue, app.result_store, app.event_store):
        path = getattr(store, "path", None)
        if isinstance(path, Path) and not path.exists():
            return path
    return None


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def main() -> None:
    """Console-script entry point (``omniq``)."""
    app(prog_name="omniq")


__all__ = ["app", "main"]


# Their commands register themselves on ``app`` when imported (they use the options above).
from omniq.cli import dashboard, manage  # noqa: E402, F401
