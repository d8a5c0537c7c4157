"""OmniQ's no-op tasks, importable by module path (``benchmarks.peers.omniq_tasks``) so that
they travel as msgpack references to ``omniq worker`` processes."""

from __future__ import annotations

from benchmarks.peers.record import record


async def noop(i: int) -> None:
    record(i)


def noop_sync(i: int) -> None:
    """For the thread, process and gevent worker types, which run plain functions."""
    record(i)
