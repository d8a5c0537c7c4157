"""Test-wide plumbing: gating tests that need a real server (PostgreSQL, Redis, NATS).

A test that needs a server says so with a marker, and is skipped when that server is not
listening on loopback::

    @pytest.mark.services("redis")
    async def test_something_redis_specific() -> None: ...

With ``OMNIQ_REQUIRE_SERVICES=1`` in the environment (CI), an unreachable server fails the test
instead of skipping it, so a broken service container can never turn a run silently green.

Servers are expected on 127.0.0.1 at their usual port; ``OMNIQ_TEST_<SERVICE>_PORT`` (for example
``OMNIQ_TEST_REDIS_PORT=6380``) moves one. Backend factories of the conformance suite read the same
variables through :func:`service_address`.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Callable, Iterator

import pytest

# The embedded default keeps its database in OMNIQ_BASE_DIR (./.omniq otherwise): point it at a
# private folder for the whole run, before any test imports omniq and reads its settings, so tests
# never touch the checkout nor share state between runs.
os.environ["OMNIQ_BASE_DIR"] = tempfile.mkdtemp(prefix="omniq-tests-")

#: Every service a test may require, with its default port on 127.0.0.1.
SERVICE_PORTS: dict[str, int] = {"postgres": 5432, "redis": 6379, "nats": 4222}

SERVICE_HOST = "127.0.0.1"
REQUIRE_SERVICES_ENV = "OMNIQ_REQUIRE_SERVICES"


def service_address(name: str) -> tuple[str, int]:
    """Where the tests look for ``name``: 127.0.0.1 and its port (``OMNIQ_TEST_<NAME>_PORT``)."""
    if name not in SERVICE_PORTS:
        raise ValueError(f"unknown test service {name!r}; known: {sorted(SERVICE_PORTS)}")
    override = os.environ.get(f"OMNIQ_TEST_{name.upper()}_PORT")
    return SERVICE_HOST, int(override) if override else SERVICE_PORTS[name]


def _accepts_connections(host: str, port: int) -> bool:
    # A TCP connect to loopback: answered or refused at once, so it is not worth caching.
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def require_service(name: str) -> None:
    """Returns when ``name`` is reachable; otherwise skips the calling test, or fails it when
    ``OMNIQ_REQUIRE_SERVICES=1``. Usable from a test, a fixture or a hook."""
    host, port = service_address(name)
    if _accepts_connections(host, port):
        return
    problem = f"service {name!r} is not reachable on {host}:{port}"
    if os.environ.get(REQUIRE_SERVICES_ENV) == "1":
        pytest.fail(
            f"{problem}, and {REQUIRE_SERVICES_ENV}=1 says it must be: start it, or point "
            f"OMNIQ_TEST_{name.upper()}_PORT at it",
            pytrace=False,
        )
    pytest.skip(f"{problem} (set {REQUIRE_SERVICES_ENV}=1 to make this an error)")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Before any fixture runs, so a backend factory never tries to connect to a missing server.
    for marker in item.iter_markers("services"):
        for name in marker.args:
            require_service(name)


@pytest.fixture
def service_gate() -> Callable[[str], None]:
    """:func:`require_service`, for tests and fixtures that decide at run time what they need."""
    return require_service


@pytest.fixture(autouse=True)
def _private_base_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Each test gets its own embedded-default folder, so tests never see each other's tasks."""
    from omniq.config import reload_settings

    monkeypatch.setenv("OMNIQ_BASE_DIR", str(tmp_path_factory.mktemp("omniq-base")))
    reload_settings()
    yield
    monkeypatch.undo()
    reload_settings()
