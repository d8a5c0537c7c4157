"""Time helpers: OmniQ works in aware UTC datetimes everywhere; naive input is taken as UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC (the seeds use ``datetime.utcnow()``), aware ones converted."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def as_utc_opt(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def as_timedelta(value: timedelta | float | int | None, *, name: str) -> timedelta | None:
    """Accepts seconds or a timedelta; refuses negatives here so bad input fails at the call site."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, timedelta | int | float):
        raise TypeError(f"{name} must be a timedelta or a number of seconds, got {value!r}")
    delta = value if isinstance(value, timedelta) else timedelta(seconds=value)
    if delta < timedelta(0):
        raise ValueError(f"{name} must not be negative, got {value!r}")
    return delta


def as_seconds(value: timedelta | float | int | None, *, name: str) -> float | None:
    delta = as_timedelta(value, name=name)
    return None if delta is None else delta.total_seconds()
