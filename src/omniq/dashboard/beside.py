"""The dashboard beside a worker: ``OMNIQ_DASHBOARD_ENABLED=1 omniq worker`` serves it on
``OMNIQ_DASHBOARD_PORT`` (``OMNIQ_DASHBOARD_HOST``, default 127.0.0.1) in the worker's own event
loop, over the worker's application. Importing this module needs no web dependency; turning the
dashboard on without the ``dashboard`` extra is reported and the worker runs on without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable

from omniq.cli.say import Line, Printer
from omniq.config import get_settings
from omniq.core import AsyncOmniQ
from omniq.exceptions import ConfigError

Stop = Callable[[], Awaitable[None]]


async def start_if_enabled(app: AsyncOmniQ, console: Printer) -> Stop | None:
    """Starts the dashboard when the settings ask for it; returns how to stop it. A dashboard
    that cannot start (extra missing, port taken, open beyond loopback) is reported on
    ``console`` and the worker goes on: tasks matter more than the view of them."""
    if not get_settings().DASHBOARD_ENABLED:
        return None
    try:
        from omniq.dashboard.server import build_server
    except ImportError as exc:
        console.print(Line(f"dashboard not started: install the 'dashboard' extra ({exc})", "red"))
        return None
    host = os.environ.get("OMNIQ_DASHBOARD_HOST") or "127.0.0.1"
    try:
        server = build_server(app, host=host, owns_app=False, signals=False)
    except ConfigError as exc:
        console.print(Line(f"dashboard not started: {exc}", "red"))
        return None
    try:
        serving = await server.start()
    except Exception as exc:
        console.print(Line(f"dashboard not started: {type(exc).__name__}: {exc}", "red"))
        return None
    console.print(Line(f"dashboard on {server.url}", "green"))

    async def stop() -> None:
        server.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await serving

    return stop


__all__ = ["start_if_enabled"]
