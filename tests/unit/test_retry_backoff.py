"""Specification of retry backoff: exponential, capped, optionally with full jitter."""

from __future__ import annotations

import pytest

from omniq.models.task import Task
from omniq.queue.retry import backoff_delay


def test_without_jitter_the_delay_doubles_from_the_base() -> None:
    delays = [backoff_delay(n, base=1.0, factor=2.0, cap=1000.0, jitter=False) for n in range(1, 6)]

    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0]


def test_the_first_retry_waits_the_base_delay() -> None:
    assert backoff_delay(1, base=3.0, factor=5.0, cap=100.0, jitter=False) == 3.0


def test_the_growth_factor_is_configurable() -> None:
    assert backoff_delay(3, base=1.0, factor=3.0, cap=1000.0, jitter=False) == 9.0


def test_without_jitter_the_delay_is_capped() -> None:
    assert backoff_delay(20, base=1.0, factor=2.0, cap=60.0, jitter=False) == 60.0


@pytest.mark.parametrize("attempt", [1_100, 10_000, 10**9])
def test_a_very_late_attempt_is_capped_rather_than_overflowing(attempt: int) -> None:
    assert backoff_delay(attempt, base=1.0, factor=2.0, cap=300.0, jitter=False) == 300.0


def test_attempt_zero_waits_the_base_delay() -> None:
    assert backoff_delay(0, base=2.0, jitter=False) == 2.0


@pytest.mark.parametrize("attempt", [1, 3, 6, 12])
def test_with_jitter_the_delay_stays_within_zero_and_the_exponential_delay(attempt: int) -> None:
    ceiling = min(100.0, 1.0 * 2.0 ** (attempt - 1))

    delays = [
        backoff_delay(attempt, base=1.0, factor=2.0, cap=100.0, jitter=True) for _ in range(500)
    ]

    assert all(0.0 <= d <= ceiling for d in delays)


def test_with_jitter_the_delays_are_spread_out() -> None:
    delays = {backoff_delay(5, base=1.0, factor=2.0, cap=100.0, jitter=True) for _ in range(100)}

    assert len(delays) > 50
    assert min(delays) < 8.0 < max(delays)


def test_a_task_computes_its_delays_with_its_own_policy() -> None:
    task = Task(
        func="f", retry_delay=2.0, retry_backoff=3.0, retry_max_delay=50.0, retry_jitter=False
    )

    assert [task.retry_delay_for(n) for n in (1, 2, 3, 4)] == [2.0, 6.0, 18.0, 50.0]
