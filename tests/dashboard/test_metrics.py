"""Throughput and failure rate from successive counts by status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from omniq.dashboard.metrics import BUSY_SHARE, Sampler, pace

T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def no_stats() -> dict[str, dict[str, int]]:
    return {}


def test_the_first_reading_is_only_a_baseline() -> None:
    sampler = Sampler(no_stats)
    assert sampler.add(T0, {"default": {"success": 10}}) is None
    assert list(sampler.points) == []


def test_rates_come_from_the_differences_over_the_interval() -> None:
    sampler = Sampler(no_stats)
    sampler.add(T0, {"a": {"success": 10, "dead": 1}, "b": {"success": 5}})
    point = sampler.add(
        T0 + timedelta(seconds=2),
        {"a": {"success": 16, "dead": 3, "pending": 99}, "b": {"success": 7}},
    )
    assert point is not None
    assert point.throughput == pytest.approx(4.0)  # (6 + 2) successes in 2 s
    assert point.failures == pytest.approx(1.0)
    assert point.failure_rate == pytest.approx(2 / 10)


def test_an_interval_where_nothing_finished_has_no_failure_rate() -> None:
    sampler = Sampler(no_stats)
    sampler.add(T0, {"a": {"success": 3}})
    point = sampler.add(T0 + timedelta(seconds=1), {"a": {"success": 3, "pending": 5}})
    assert point is not None
    assert point.throughput == 0
    assert point.failure_rate is None


def test_counts_that_went_down_after_a_purge_never_give_negative_rates() -> None:
    sampler = Sampler(no_stats)
    sampler.add(T0, {"a": {"success": 50, "dead": 5}})
    point = sampler.add(T0 + timedelta(seconds=1), {"a": {"success": 2}})
    assert point is not None
    assert point.throughput == 0
    assert point.failures == 0


def test_the_history_keeps_the_last_points_only() -> None:
    sampler = Sampler(no_stats, size=3)
    for i in range(10):
        sampler.add(T0 + timedelta(seconds=i), {"a": {"success": i * 2}})
    assert len(sampler.points) == 3
    assert sampler.points[-1].at == T0 + timedelta(seconds=9)


def test_a_non_positive_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="-1"):
        Sampler(no_stats, interval=-1)


def test_fast_work_keeps_the_interval() -> None:
    assert pace(1.0, 0.01) == 1.0


def test_slow_work_is_spaced_out_to_its_share_of_the_time() -> None:
    took = 3.0
    wait = pace(1.0, took)
    assert took / (took + wait) == pytest.approx(BUSY_SHARE)
