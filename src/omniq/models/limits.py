"""Rate limits and key concurrency limits: their values, parsed once, and what the stores report.

A rate limit is written ``"<count>/<unit>"`` (``"100/m"``, ``"50/s"``, ``"2/h"``; units ``s``,
``m``, ``h``, ``d`` or their long names). It is enforced as a token bucket in its GCRA form
(one number per bucket, the "theoretical arrival time"), so every store keeps and updates a
single time per key atomically. The bucket holds up to one second's worth of tokens (at least
one, at most ``count``): a worker that is a few milliseconds late to take a token does not lose
it, and a burst after an idle spell stays short.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from omniq.exceptions import ConfigError

_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}
_SHORT = {1.0: "s", 60.0: "m", 3600.0: "h", 86400.0: "d"}
_RATE = re.compile(r"^\s*(\d{1,9})\s*/\s*([a-z]+?)s?\s*$")
#: the most tasks of one key that may run at once
MAX_CONCURRENCY_LIMIT = 1_000_000
#: longest concurrency key (it becomes part of a store key)
MAX_KEY_LENGTH = 200


class RateLimit(msgspec.Struct, frozen=True):
    """``count`` tasks per ``period`` seconds, with room for ``burst`` at once."""

    count: int
    period: float
    burst: int

    @property
    def interval(self) -> float:
        """Seconds between two tokens."""
        return self.period / self.count

    def __str__(self) -> str:
        return f"{self.count}/{_SHORT[self.period]}"


@functools.lru_cache(maxsize=1024)
def _parse(text: str) -> RateLimit | None:
    match = _RATE.fullmatch(text.lower())
    if match is None or match.group(2) not in _UNITS:
        return None
    count, period = int(match.group(1)), _UNITS[match.group(2)]
    if count < 1:
        return None
    burst = max(1, min(count, math.ceil(count / period)))
    return RateLimit(count, period, burst)


def parse_rate_limit(value: Any, what: str = "rate_limit") -> RateLimit:
    """A rate limit from ``"100/m"`` (or a :class:`RateLimit`); :class:`ConfigError` naming the
    value and ``what`` it was given for otherwise."""
    if isinstance(value, RateLimit):
        return value
    parsed = _parse(value) if isinstance(value, str) else None
    if parsed is None:
        raise ConfigError(
            f"{what} must look like '100/m' (a whole number of tasks per s, m, h or d, at least "
            f"1), got {value!r}"
        )
    return parsed


def rate_limit_text(value: Any, what: str = "rate_limit") -> str | None:
    """The normalised text of a rate limit option (None stays None): what a task carries."""
    return None if value is None else str(parse_rate_limit(value, what))


def check_concurrency_limit(value: Any, what: str = "concurrency_limit") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{what} must be a whole number >= 1, got {value!r}")
    if not 1 <= value <= MAX_CONCURRENCY_LIMIT:
        raise ConfigError(f"{what} must be between 1 and {MAX_CONCURRENCY_LIMIT}, got {value!r}")
    return value


def check_concurrency_key(value: Any, what: str = "concurrency_key") -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_KEY_LENGTH:
        raise ConfigError(
            f"{what} must be a non-empty string of at most {MAX_KEY_LENGTH} characters, "
            f"got {value!r}"
        )
    if not value.isprintable():
        raise ConfigError(f"{what} must be printable text, got {value!r}")
    return value


ConcurrencyKey = str | Callable[..., str]


def concurrency_key_of(
    key: ConcurrencyKey | None, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> str | None:
    """The key a task is counted under: ``key`` itself, or what it returns when called with the
    task's arguments (``lambda user_id, **_: f"user:{user_id}"``)."""
    if key is None:
        return None
    if callable(key):
        try:
            made = key(*args, **kwargs)
        except Exception as exc:
            raise ConfigError(
                f"concurrency_key {key!r} failed on the task's arguments: {type(exc).__name__}: "
                f"{exc}"
            ) from exc
        # the error names the callable too: the value alone does not say where it came from
        return check_concurrency_key(made, f"the key that concurrency_key {key!r} returned")
    return check_concurrency_key(key)


def check_limit_options(options: Mapping[str, Any]) -> None:
    """The limit options of ``@oq.task`` checked when the task is defined."""
    if options.get("rate_limit") is not None:
        parse_rate_limit(options["rate_limit"])
    key = options.get("concurrency_key")
    if key is not None and not callable(key):
        check_concurrency_key(key)
    if options.get("concurrency_limit") is not None:
        check_concurrency_limit(options["concurrency_limit"])
        if key is None:
            raise ConfigError("concurrency_limit needs a concurrency_key to count tasks under")


class BucketUsage(msgspec.Struct, frozen=True, kw_only=True):
    """A rate-limit bucket as a store reports it."""

    key: str  # "task:<name>" or "queue:<name>"
    rate: str  # "50/s"
    tokens: float  # tokens available now (0 .. burst)
    next_token_in: float  # seconds until the next token (0 when one is available)


class SlotUsage(msgspec.Struct, frozen=True, kw_only=True):
    """A concurrency key as a store reports it."""

    key: str
    limit: int
    running: int  # live holders (expired ones are not counted)


class LimitUsage(msgspec.Struct, frozen=True, kw_only=True):
    buckets: list[BucketUsage] = msgspec.field(default_factory=list)
    slots: list[SlotUsage] = msgspec.field(default_factory=list)


def rate_of(interval: float, burst: int) -> str:
    """The text of a bucket from the two numbers a store keeps."""
    per_second = 1.0 / interval
    for period, unit in _SHORT.items():
        count = per_second * period
        if count >= 1 and abs(count - round(count)) < 1e-6:
            return f"{round(count)}/{unit}"
    return f"{per_second:.4g}/s"


def bucket_usage(key: str, tat: float, interval: float, burst: int, now: float) -> BucketUsage:
    """A bucket's view at ``now`` from its stored state (see :func:`take_token`)."""
    backlog = max(0.0, tat - now)  # how far ahead of now the bucket has given tokens out
    tokens = max(0.0, min(float(burst), burst - backlog / interval))
    wait = max(0.0, tat - (burst - 1) * interval - now)
    return BucketUsage(
        key=key, rate=rate_of(interval, burst), tokens=round(tokens, 3), next_token_in=wait
    )


def take_token(tat: float | None, interval: float, burst: int, now: float) -> tuple[float, float]:
    """GCRA: ``(new tat, wait)``; ``wait`` is 0.0 when a token was taken, else the seconds until
    the next one is due (and the state is unchanged). ``tat`` is None for a new bucket."""
    current = now if tat is None else tat
    allowed_from = current - (burst - 1) * interval
    if allowed_from > now:
        return current, allowed_from - now
    return max(current, now) + interval, 0.0


def admit(
    holders: dict[str, float], holder: str, limit: int, expires_at: float, now: float
) -> tuple[dict[str, float], bool]:
    """Key concurrency: ``(holders after, granted)``. Holders past their expiry are dropped (a
    killed worker's slot comes back when its lease would have ended); a holder already in is
    renewed."""
    live = {h: exp for h, exp in holders.items() if exp > now}
    if holder in live or len(live) < limit:
        live[holder] = expires_at
        return live, True
    return live, False


__all__ = [
    "MAX_CONCURRENCY_LIMIT",
    "MAX_KEY_LENGTH",
    "BucketRecord",
    "BucketUsage",
    "ConcurrencyKey",
    "LimitUsage",
    "RateLimit",
    "SlotRecord",
    "SlotUsage",
    "admit",
    "bucket_usage",
    "check_concurrency_key",
    "check_concurrency_limit",
    "check_limit_options",
    "concurrency_key_of",
    "new_bucket",
    "new_slots",
    "parse_rate_limit",
    "rate_limit_text",
    "rate_of",
    "take_token",
]


class BucketRecord(msgspec.Struct, array_like=True):
    """A bucket as compare-and-set stores keep it (one small record per key)."""

    tat: float
    interval: float
    burst: int

    def take(self, interval: float, burst: int, now: float) -> float:
        """Takes a token in place (see :func:`take_token`); the bucket adopts the rate asked for."""
        self.tat, wait = take_token(self.tat, interval, burst, now)
        self.interval, self.burst = interval, burst
        return wait

    def usage(self, key: str, now: float) -> BucketUsage:
        return bucket_usage(key, self.tat, self.interval, self.burst, now)


class SlotRecord(msgspec.Struct, array_like=True):
    """A concurrency key as compare-and-set stores keep it: its limit and holders' expiries."""

    limit: int
    holders: dict[str, float]

    def acquire(self, holder: str, limit: int, expires_at: float, now: float) -> bool:
        self.limit = limit
        self.holders, granted = admit(self.holders, holder, limit, expires_at, now)
        return granted

    def usage(self, key: str, now: float) -> SlotUsage:
        running = sum(1 for exp in self.holders.values() if exp > now)
        return SlotUsage(key=key, limit=self.limit, running=running)


def new_bucket(now: float) -> BucketRecord:
    return BucketRecord(now, 1.0, 1)


def new_slots() -> SlotRecord:
    return SlotRecord(1, {})
