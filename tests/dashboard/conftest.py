"""A dashboard served for real (uvicorn on a free loopback port, in the test's loop) over an
application the test fills; HTTP through httpx."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

pytest.importorskip("litestar")

from omniq import AsyncOmniQ
from omniq.backend import create_backend
from omniq.dashboard.security import Credentials
from omniq.dashboard.server import DashboardServer, build_server


@dataclass
class Served:
    app: AsyncOmniQ
    server: DashboardServer
    url: str

    def client(self, **options: object) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=10, **options)  # type: ignore[arg-type]


async def serve(
    app: AsyncOmniQ, credentials: Credentials | None = None, refresh: float = 0.2
) -> tuple[DashboardServer, asyncio.Task[None]]:
    server = build_server(
        app,
        port=0,
        credentials=credentials or Credentials(),
        owns_app=False,
        signals=False,
        refresh=refresh,
    )
    return server, await server.start()


@pytest.fixture
def sqlite_app(tmp_path: Path) -> AsyncOmniQ:
    return AsyncOmniQ.from_backend(
        create_backend(url=f"sqlite:///{tmp_path / 'shop.db'}", project_name="shop"), events=True
    )


@pytest.fixture
async def dashboard(
    sqlite_app: AsyncOmniQ,
) -> AsyncIterator[Callable[..., asyncio.Future[Served]]]:
    """``await dashboard(credentials=..., refresh=...)`` serves ``sqlite_app``; stopped after the test."""
    running: list[tuple[DashboardServer, asyncio.Task[None]]] = []

    async def start(credentials: Credentials | None = None, refresh: float = 0.2) -> Served:
        server, task = await serve(sqlite_app, credentials, refresh)
        running.append((server, task))
        return Served(sqlite_app, server, server.url)

    yield start  # type: ignore[misc]
    for server, task in running:
        server.stop()
        await task
    await sqlite_app.close()
