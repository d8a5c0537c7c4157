"""Importable task functions for tests (workers resolve them by ``module:qualname``)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter

calls: Counter[str] = Counter()
lock = threading.Lock()
running_now = 0
peak_running = 0


def add(x: int, y: int) -> int:
    return x + y


async def async_add(x: int, y: int) -> int:
    await asyncio.sleep(0)
    return x + y


def multiply(x: int, y: int) -> int:
    return x * y


def boom(message: str = "boom") -> None:
    raise ValueError(message)


def fail_times(key: str, times: int) -> str:
    """Fails ``times`` times for ``key``, then succeeds."""
    with lock:
        calls[key] += 1
        n = calls[key]
    if n <= times:
        raise ConnectionError(f"attempt {n} for {key} failed")
    return f"{key} ok after {n}"


def raise_type_error() -> None:
    raise TypeError("not retryable by policy")


async def async_sleep(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "slept"


def sync_sleep(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


async def track_concurrency(seconds: float) -> int:
    global running_now, peak_running
    running_now += 1
    peak_running = max(peak_running, running_now)
    try:
        await asyncio.sleep(seconds)
    finally:
        running_now -= 1
    return peak_running


def record(key: str) -> str:
    with lock:
        calls[key] += 1
    return key


order: list[str] = []


def note(name: str) -> str:
    order.append(name)
    return name


def reset() -> None:
    global running_now, peak_running
    calls.clear()
    order.clear()
    outcomes.clear()
    running_now = 0
    peak_running = 0


def hang_forever() -> None:
    while True:
        time.sleep(1)


def die_hard() -> None:
    import os

    os._exit(1)


def whoami() -> int:
    import os

    return os.getpid()


def blocking_sleep_span(seconds: float) -> tuple[float, float]:
    """Sleeps with the blocking ``time.sleep`` (cooperative once gevent patched it); returns when
    it started and ended, so a test can measure how many ran at once."""
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


def total(values: list[int]) -> int:
    return sum(values)


def square(x: int) -> int:
    return x * x


def prefixed(value: object, prefix: str) -> str:
    return f"{prefix}{value}"


outcomes: list[tuple[str, str, object]] = []


def record_outcome(outcome: object) -> None:
    """A per-task callback: remembers (event, task id, result or error type)."""
    event = getattr(outcome, "event", "?")
    error_type = getattr(outcome, "error_type", None)
    payload = error_type if error_type is not None else getattr(outcome, "result", None)
    with lock:
        outcomes.append((event, getattr(outcome, "task_id", "?"), payload))


def broken_callback(outcome: object) -> None:
    raise RuntimeError("this callback is broken")
