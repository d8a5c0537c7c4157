"""Serving the dashboard: alone (``omniq dashboard``) or beside a worker in its event loop.

Credentials come from the command line or ``OMNIQ_DASHBOARD_TOKEN`` / ``OMNIQ_DASHBOARD_AUTH``
(``user:password``); binding beyond loopback without one is refused before anything listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn

from omniq.config import get_settings, settings
from omniq.dashboard.app import create_app
from omniq.dashboard.security import Credentials
from omniq.exceptions import ConfigError

DEFAULT_HOST = "127.0.0.1"
#: The port when OMNIQ_DASHBOARD_PORT is not set: the settings' default, one number for
#: ``omniq dashboard`` and a worker's dashboard.
DEFAULT_PORT = settings.DASHBOARD_PORT


def default_port() -> int:
    """``OMNIQ_DASHBOARD_PORT`` when it is set (validated by the settings), else 8765: the
    port a worker's dashboard takes too."""
    return int(get_settings().DASHBOARD_PORT)


def credentials_from_env(token: str | None = None, basic: str | None = None) -> Credentials:
    return Credentials(
        token=token or os.environ.get("OMNIQ_DASHBOARD_TOKEN") or None,
        basic=basic or os.environ.get("OMNIQ_DASHBOARD_AUTH") or None,
    )


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a port in use is a clear error (uvicorn would
    exit the whole process, a worker included)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto given: asyncio turns on TCP_NODELAY only for sockets that say they are TCP, and
    # without it every response on a kept-alive connection waits ~40 ms for a delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"the dashboard cannot listen on {host}:{port}: {exc.strerror}") from None
    # listening at once: a second bind of the same port now fails, even with SO_REUSEADDR
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


@dataclass
class DashboardServer:
    """A dashboard bound to its socket, ready to serve."""

    server: _Server
    sock: socket.socket
    host: str

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def serve(self) -> None:
        try:
            await self.server.serve(sockets=[self.sock])
        finally:
            self.sock.close()

    @property
    def started(self) -> bool:
        return bool(self.server.started)

    async def start(self) -> asyncio.Task[None]:
        """Serves in a task of the running loop and returns it once the server has started
        (its lifespan ran: the application is connected); a start-up that fails raises here,
        with the serving task's own error when it has one."""
        serving = asyncio.get_running_loop().create_task(self.serve())
        ready = asyncio.get_running_loop().create_task(self.server.ready.wait())
        await asyncio.wait({serving, ready}, return_when=asyncio.FIRST_COMPLETED)
        if ready.done():
            return serving
        ready.cancel()
        serving.result()  # its exception, if it raised one
        raise RuntimeError("the dashboard server stopped during its start-up")

    def stop(self) -> None:
        self.server.should_exit = True


def build_server(
    oq: Any,
    *,
    host: str = DEFAULT_HOST,
    port: int | None = None,
    credentials: Credentials | None = None,
    owns_app: bool = True,
    refresh: float = 1.0,
    signals: bool = True,
) -> DashboardServer:
    """The dashboard of ``oq`` on ``host:port`` (port 0: any free one). ``signals=False``: the
    server leaves SIGINT/SIGTERM to its host program (a worker). Refuses, before listening, an
    open dashboard beyond loopback or a port in use."""
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
    sock = listen(host, port)
    return DashboardServer(_Server(config) if signals else _Beside(config), sock, host)


class _Server(uvicorn.Server):
    """uvicorn's server with an event for the end of its start-up (uvicorn itself only sets a
    flag), so that starting it is awaited rather than polled."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.ready.set()


class _Beside(_Server):
    """A server inside another program's event loop: that program handles the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DashboardServer",
    "build_server",
    "credentials_from_env",
    "default_port",
    "listen",
]
