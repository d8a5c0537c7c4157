"""Serving the dashboard: alone (``omniq dashboard``) or beside a worker in its event loop.

Credentials come from the command line or ``OMNIQ_DASHBOARD_TOKEN`` / ``OMNIQ_DASHBOARD_AUTH``
(``user:password``); binding beyond loopback without one is refused before anything listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from typing import Any

import uvicorn

from omniq.config import get_settings
from omniq.dashboard.app import create_app
from omniq.dashboard.security import Credentials
from omniq.exceptions import ConfigError

DEFAULT_HOST = "127.0.0.1"
#: The port when OMNIQ_DASHBOARD_PORT is not set.
DEFAULT_PORT = 8765


def default_port() -> int:
    """``OMNIQ_DASHBOARD_PORT`` when it is set (validated by the settings), else 8765."""
    if os.environ.get("OMNIQ_DASHBOARD_PORT"):
        return int(get_settings().DASHBOARD_PORT)
    return DEFAULT_PORT


def credentials_from_env(token: str | None = None, basic: str | None = None) -> Credentials:
    return Credentials(
        token=token or os.environ.get("OMNIQ_DASHBOARD_TOKEN") or None,
        basic=basic or os.environ.get("OMNIQ_DASHBOARD_AUTH") or None,
    )


def build_server(
    oq: Any,
    *,
    host: str = DEFAULT_HOST,
    port: int | None = None,
    credentials: Credentials | None = None,
    owns_app: bool = True,
    refresh: float = 1.0,
    signals: bool = True,
) -> uvicorn.Server:
    """``signals=False``: the server leaves SIGINT/SIGTERM to its host (a worker)."""
    creds = credentials if credentials is not None else credentials_from_env()
    creds.check_bind(host)
    port = default_port() if port is None else port
    if not 0 <= port <= 65535:
        raise ConfigError(f"dashboard port must be between 0 and 65535, got {port!r}")
    app = create_app(oq, credentials=creds, owns_app=owns_app, refresh=refresh)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        # open event streams never end by themselves: give them a moment, then close them
        timeout_graceful_shutdown=2,
        lifespan="on",
    )
    return uvicorn.Server(config) if signals else _Beside(config)


class _Beside(uvicorn.Server):
    """A server inside another program's event loop: that program handles the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_beside(server: uvicorn.Server, stop: asyncio.Event) -> None:
    """Runs ``server`` (built with ``signals=False``) in this event loop until ``stop`` is set."""
    task = asyncio.create_task(server.serve())
    try:
        await stop.wait()
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task


__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "build_server", "credentials_from_env",
           "default_port", "serve_beside"]  # fmt: skip
