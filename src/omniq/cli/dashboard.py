"""``omniq dashboard``: the web dashboard of a backend, in the foreground until Ctrl-C."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from omniq.cli.commands import (
    AppOption,
    ConfigOption,
    ProjectOption,
    UrlOption,
    _guard_backend,
    _missing_database,
    _run,
    app,
)
from omniq.cli.fast import fail, run_guarded
from omniq.cli.source import AppSource, load_app
from omniq.cli.worker import stop_signals
from omniq.exceptions import ConfigError


@app.command()
def dashboard(
    url: UrlOption = None,
    config: ConfigOption = None,
    app_spec: AppOption = None,
    project: ProjectOption = None,
    events: Annotated[
        bool, typer.Option("--events", help="With --url: show the events kept in that backend.")
    ] = False,
    host: Annotated[
        str,
        typer.Option(
            "--host", help="Address to listen on; beyond loopback a credential is required."
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int | None,
        typer.Option(
            "--port", help="Port (default: OMNIQ_DASHBOARD_PORT, else 8765).", show_default=False
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="Bearer token required to use it (or OMNIQ_DASHBOARD_TOKEN).",
            show_default=False,
        ),
    ] = None,
    auth: Annotated[
        str | None,
        typer.Option(
            "--auth",
            help="Basic auth 'user:password' (or OMNIQ_DASHBOARD_AUTH).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the live web dashboard and its REST API (/api, schema at /schema) until Ctrl-C."""
    try:
        from omniq.dashboard.server import build_server, credentials_from_env
    except ImportError as exc:
        fail(
            f"the dashboard needs the 'dashboard' extra (pip install 'omniq-tasks[dashboard]'): "
            f"{exc}"
        )
    source = AppSource(url=url, config=config, app=app_spec, project=project, events=events)
    selected = run_guarded(lambda: load_app(source))
    try:
        server = build_server(
            selected.app,
            host=host,
            port=port,
            credentials=credentials_from_env(token, auth),
            signals=False,
        )
    except ConfigError as exc:
        fail(str(exc))

    missing = _missing_database(selected.app)

    async def serve() -> None:
        # connected before uvicorn starts: an unreachable backend is one line and exit status 1
        # (inside uvicorn's start-up it was a logged traceback and uvicorn's own exit 3)
        try:
            await selected.app.connect()
        except BaseException:
            await selected.app.close()
            raise
        console = Console(stderr=True)
        console.print(f"omniq dashboard · {selected.where} · {server.url} · Ctrl-C to stop")
        if missing is not None:  # a mistyped path would otherwise show an empty store, silently
            console.print(
                f"[yellow]{missing} did not exist: it was created empty "
                "(a mistyped --url or path?)[/yellow]",
                highlight=False,
            )
        # SIGINT/SIGTERM stop it gracefully and the command exits 0, as omniq worker does
        with stop_signals(lambda _signum: server.stop()):
            await server.serve()

    run_guarded(lambda: _run(_guard_backend(serve())))
    if not server.started:
        fail(f"the dashboard did not start: cannot open the backend {selected.where}", 1)
