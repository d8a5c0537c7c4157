"""The gate in tests/conftest.py: a missing server skips its tests, or fails them when required."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest

Gate = Callable[[str], None]


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_unreachable_service_skips_the_test(
    service_gate: Gate, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNIQ_TEST_REDIS_PORT", str(closed_port))
    monkeypatch.delenv("OMNIQ_REQUIRE_SERVICES", raising=False)

    with pytest.raises(pytest.skip.Exception, match=f"redis.*127.0.0.1:{closed_port}"):
        service_gate("redis")


def test_unreachable_service_fails_the_test_when_services_are_required(
    service_gate: Gate, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNIQ_TEST_NATS_PORT", str(closed_port))
    monkeypatch.setenv("OMNIQ_REQUIRE_SERVICES", "1")

    with pytest.raises(pytest.fail.Exception, match="OMNIQ_REQUIRE_SERVICES=1"):
        service_gate("nats")


def test_reachable_service_lets_the_test_run(
    service_gate: Gate, listening_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNIQ_TEST_POSTGRES_PORT", str(listening_port))
    monkeypatch.setenv("OMNIQ_REQUIRE_SERVICES", "1")

    service_gate("postgres")  # neither skips nor fails


def test_unknown_service_name_is_a_mistake_in_the_test(service_gate: Gate) -> None:
    with pytest.raises(ValueError, match="mysql"):
        service_gate("mysql")
