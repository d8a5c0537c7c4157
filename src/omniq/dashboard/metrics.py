"""Throughput and failure rate over time, from the counts by status every backend keeps.

The dashboard samples :meth:`BaseTaskQueue.stats` at a fixed pace and keeps the differences: tasks
that reached ``success`` per second, and the share of finished tasks that ended ``dead`` (out of
attempts). This needs no event store and costs one stats query per interval however many browsers
watch. The history starts when the dashboard does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from omniq._time import utcnow

log = logging.getLogger("omniq.dashboard")

#: Work of the dashboard's own (a sample, a page render) may take at most this share of the time
#: between two of them: on a big store a slow query spaces the next one out instead of keeping
#: the database busy.
BUSY_SHARE = 0.25


def pace(interval: float, took: float) -> float:
    """Seconds to wait before doing again what just took ``took`` seconds."""
    return max(interval, took / BUSY_SHARE - took)


#: Statuses a task ends in; their totals only grow (until a purge or expiry sweep removes rows).
FINISHED = ("success", "dead", "cancelled", "expired")


@dataclass(frozen=True)
class Point:
    at: datetime
    throughput: float  # tasks finished successfully per second over the interval
    failures: float  # tasks that went dead per second over the interval
    failure_rate: float | None  # dead / finished over the interval; None when nothing finished


class Sampler:
    """Keeps the last ``size`` intervals of throughput and failure rate."""

    def __init__(
        self,
        read: Callable[[], Awaitable[dict[str, dict[str, int]]]],
        *,
        interval: float = 2.0,
        size: int = 150,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"metrics interval must be positive, got {interval!r}")
        self._read = read
        self.interval = interval
        self.points: deque[Point] = deque(maxlen=size)
        self._last: tuple[datetime, dict[str, int]] | None = None
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def totals(stats: dict[str, dict[str, int]]) -> dict[str, int]:
        out = dict.fromkeys(FINISHED, 0)
        for counts in stats.values():
            for status in FINISHED:
                out[status] += counts.get(status, 0)
        return out

    def add(self, at: datetime, stats: dict[str, dict[str, int]]) -> Point | None:
        """Records one reading; the first one only sets the baseline. A total that went down
        (rows purged or swept) counts as zero for that interval rather than a negative rate."""
        totals = self.totals(stats)
        last, self._last = self._last, (at, totals)
        if last is None:
            return None
        seconds = (at - last[0]).total_seconds()
        if seconds <= 0:
            return None
        delta = {k: max(0, totals[k] - last[1][k]) for k in FINISHED}
        finished = sum(delta.values())
        point = Point(
            at=at,
            throughput=delta["success"] / seconds,
            failures=delta["dead"] / seconds,
            failure_rate=delta["dead"] / finished if finished else None,
        )
        self.points.append(point)
        return point

    async def sample(self) -> None:
        self.add(utcnow(), await self._read())

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self.sample()
            except Exception as exc:  # a backend hiccup leaves a gap, not a dead sampler
                log.warning("dashboard metrics sample failed: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(pace(self.interval, loop.time() - started))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


__all__ = ["BUSY_SHARE", "FINISHED", "Point", "Sampler", "pace"]
