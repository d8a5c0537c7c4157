"""The circuit breaker's state machine (omniq.storage._breaker), alone and in front of a real
component whose server refuses connections, then comes back."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from reliability.servers import PrivateRedis, free_port

from omniq import AsyncOmniQ, CircuitOpen
from omniq.exceptions import BackendUnavailable, ConfigError, TaskNotFound
from omniq.storage._breaker import BreakerConfig, BreakerState, CircuitBreaker, away, reported
from omniq.storage.redis.queue import AsyncRedisQueue
from omniq.storage.redis.results import AsyncRedisResultStorage

SERVER = "Redis at redis://:***@127.0.0.1:1/0"


def breaker(threshold: int = 3, cooldown: float = 0.05) -> CircuitBreaker:
    return CircuitBreaker(lambda: SERVER, BreakerConfig(threshold=threshold, cooldown=cooldown))


def refused() -> ConnectionRefusedError:
    return ConnectionRefusedError(111, "Connect call failed")


async def test_consecutive_failures_open_it_once_and_it_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    b = breaker(threshold=3)
    with caplog.at_level(logging.INFO, "omniq.storage"):
        for _ in range(2):
            b.failed(refused())
            b.admit()  # still closed: everything goes through
        assert b.state is BreakerState.CLOSED
        assert b.failures == 2
        assert not b.healthy
        b.failed(refused())
        assert b.state is BreakerState.OPEN
        assert b.is_open
        assert b.trips == 1
        for _ in range(5):
            with pytest.raises(CircuitOpen, match=r"Redis at redis://:\*\*\*@127.0.0.1:1/0"):
                b.admit()
    opened = [r for r in caplog.records if "circuit breaker OPEN" in r.getMessage()]
    assert len(opened) == 1
    assert opened[0].levelno == logging.WARNING
    state = b.snapshot()
    assert state["state"] == "open"
    assert state["failures"] == 3
    assert state["opened_at"] is not None
    assert abs(state["opened_at"] - time.time()) < 60
    assert "ConnectionRefusedError" in state["last_error"]


async def test_a_success_in_between_resets_the_count() -> None:
    b = breaker(threshold=3)
    b.failed(refused())
    b.failed(refused())
    b.succeeded()
    assert b.healthy
    assert b.failures == 0
    b.failed(refused())
    b.failed(refused())
    assert b.state is BreakerState.CLOSED


async def test_after_the_cooldown_one_probe_goes_and_its_success_closes_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    b = breaker(threshold=1, cooldown=0.05)
    b.failed(refused())
    with pytest.raises(CircuitOpen):
        b.admit()
    await asyncio.sleep(0.06)
    b.admit()  # the probe
    assert b.state is BreakerState.HALF_OPEN

    async def another_caller() -> None:
        b.admit()

    with pytest.raises(CircuitOpen):  # one probe at a time
        await asyncio.create_task(another_caller())
    b.admit()  # the probe's own task may nest calls (enqueue -> enqueue_many)
    with caplog.at_level(logging.INFO, "omniq.storage"):
        b.succeeded()
    assert b.state is BreakerState.CLOSED
    assert b.healthy
    assert b.snapshot()["opened_at"] is None
    assert sum("circuit breaker CLOSED" in r.getMessage() for r in caplog.records) == 1
    b.admit()


async def test_a_failed_probe_opens_it_for_another_cooldown() -> None:
    b = breaker(threshold=1, cooldown=0.05)
    b.failed(refused())
    await asyncio.sleep(0.06)
    b.admit()
    b.failed(refused())
    assert b.state is BreakerState.OPEN
    assert b.trips == 1
    assert 0 < b.retry_in() <= 0.05
    with pytest.raises(CircuitOpen):
        b.admit()


async def test_each_exception_counts_once_and_its_own_refusal_never() -> None:
    b = breaker(threshold=2)
    exc = refused()
    b.failed(exc)
    b.failed(exc)  # the same exception seen by a nested call
    assert b.failures == 1
    b.failed(CircuitOpen("already open"))
    assert b.failures == 1


async def test_threshold_zero_turns_it_off() -> None:
    b = breaker(threshold=0)
    for _ in range(50):
        b.failed(refused())
    assert b.state is BreakerState.CLOSED
    b.admit()


async def test_wait_ready_returns_when_it_closes() -> None:
    b = breaker(threshold=1, cooldown=30)
    b.failed(refused())
    waiter = asyncio.create_task(b.wait_ready())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    b.succeeded()
    await asyncio.wait_for(waiter, 5)


@pytest.mark.parametrize(
    ("options", "named"),
    [({"threshold": -1}, "-1"), ({"cooldown": 0}, "0"), ({"cooldown": float("inf")}, "inf")],
)
def test_bad_config_is_refused_naming_the_value(options: dict[str, float], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        BreakerConfig(**options)  # type: ignore[arg-type]


def test_settings_give_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    from omniq.config import reload_settings

    monkeypatch.setenv("OMNIQ_BREAKER_THRESHOLD", "7")
    monkeypatch.setenv("OMNIQ_BREAKER_COOLDOWN", "2.5")
    reload_settings()
    assert BreakerConfig.from_settings() == BreakerConfig(threshold=7, cooldown=2.5)
    queue = AsyncRedisQueue(url="redis://127.0.0.1:1/0")
    assert (queue.breaker.threshold, queue.breaker.cooldown) == (7, 2.5)


# -- in front of a real component ---------------------------------------------------------------
async def test_a_refusing_server_opens_it_and_calls_fail_fast_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from omniq.config import reload_settings

    monkeypatch.setenv("OMNIQ_BREAKER_COOLDOWN", "30")
    reload_settings()
    port = free_port()  # nothing listens there: every connection is refused
    queue = AsyncRedisQueue(url=f"redis://:s3cret-pw@127.0.0.1:{port}/0", project_name="brk")
    for _ in range(5):
        with pytest.raises(BackendUnavailable) as caught:
            await queue.get_task("some-id")
        assert not isinstance(caught.value, CircuitOpen)
    assert queue.breaker_state()["state"] == "open"
    assert away(queue) is queue.breaker
    assert reported(queue)
    for call in (queue.get_task("x"), queue.enqueue("tests.tasks_fixture:add", args=(1, 2))):
        with pytest.raises(CircuitOpen) as caught:
            await call
        assert "s3cret-pw" not in str(caught.value)
        assert f"127.0.0.1:{port}" in str(caught.value)
    assert "s3cret-pw" not in repr(queue.breaker_state())
    await queue.close()


async def test_result_waits_are_not_gated_they_wait_through_the_outage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from omniq.config import reload_settings

    monkeypatch.setenv("OMNIQ_BREAKER_THRESHOLD", "1")
    monkeypatch.setenv("OMNIQ_BREAKER_COOLDOWN", "30")
    reload_settings()
    results = AsyncRedisResultStorage(url=f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(BackendUnavailable):
        await results.get("x")
    assert results.breaker.is_open
    with pytest.raises(BackendUnavailable) as caught:  # after its own timeout, not at once
        await results.wait("x", timeout=0.3)
    assert not isinstance(caught.value, CircuitOpen)
    await results.close()


async def test_the_probe_finds_the_server_back_and_closes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from omniq.config import reload_settings

    monkeypatch.setenv("OMNIQ_BREAKER_COOLDOWN", "0.1")
    reload_settings()
    server = PrivateRedis()  # its port is free until started
    try:
        queue = AsyncRedisQueue(url=f"redis://127.0.0.1:{server.port}/0", project_name="brk")
        for _ in range(5):
            with pytest.raises(BackendUnavailable):
                await queue.get_task("x")
        assert queue.breaker.is_open
        await asyncio.to_thread(server.start)
        await queue.breaker.wait_ready()
        with pytest.raises(TaskNotFound):  # an answer: not a failure
            await queue.cancel("missing")
        assert queue.breaker_state()["state"] == "closed"
        assert queue.breaker_state()["failures"] == 0
        assert queue.breaker.trips == 1
        await queue.close()
    finally:
        await asyncio.to_thread(server.close)


async def test_the_facade_shows_its_breakers_by_role() -> None:
    from omniq.storage.memory import AsyncMemoryEventStorage

    async with AsyncOmniQ(project_name="brk", event_store=AsyncMemoryEventStorage()) as app:
        states = app.breaker_state()
    assert set(states) == {"queue", "results", "events"}
    assert all(s["state"] == "closed" and s["failures"] == 0 for s in states.values())


async def test_a_failure_counts_for_the_breaker_of_the_call_that_raised_it() -> None:
    """A result store's failure inside the queue's ``complete_many`` (results first, then the
    acknowledgement) is the result store's: the queue's breaker must not open for it."""
    results, queue = breaker(threshold=1), breaker(threshold=1)
    exc = refused()
    results.failed(exc)  # the inner call's guard sees it first
    queue.failed(exc)  # then the outer one, as it passes through
    assert results.is_open
    assert queue.failures == 0
    assert not queue.is_open
