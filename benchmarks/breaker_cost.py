"""What the circuit breaker costs per storage call: the same call with its guard and without.

    uv run python -m benchmarks.breaker_cost -n 200000

On the memory backend (no I/O, so the guard's share is as large as it can be), ``get_task`` and
``heartbeat_many`` are called through the guarded public method and through the method the guard
wraps (``__wrapped__``), interleaved, best of ``--rounds``. The drain figure with and without the
breaker is ``benchmarks.drain`` run on two trees.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from omniq.storage.memory import AsyncMemoryQueue


async def _per_call(call: Callable[[], Awaitable[Any]], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        await call()
    return (time.perf_counter() - started) / n * 1e9


async def measure(n: int, rounds: int) -> dict[str, tuple[float, float]]:
    queue = AsyncMemoryQueue(project_name="breaker-cost")
    await queue.connect()
    task_id = await queue.enqueue("benchmarks.noop:noop", args=(1,))
    claimed = await queue.dequeue()
    assert claimed is not None
    claims = [(claimed.id, claimed.claim or "")]
    cls = type(queue)
    raw_get = cls.get_task.__wrapped__  # type: ignore[attr-defined]
    raw_beat = cls.heartbeat_many.__wrapped__  # type: ignore[attr-defined]
    cases: dict[str, tuple[Callable[[], Awaitable[Any]], Callable[[], Awaitable[Any]]]] = {
        "get_task": (lambda: queue.get_task(task_id), lambda: raw_get(queue, task_id)),
        "heartbeat_many": (
            lambda: queue.heartbeat_many(claims),
            lambda: raw_beat(queue, claims),
        ),
    }
    best: dict[str, tuple[float, float]] = {}
    for name, (guarded, bare) in cases.items():
        with_guard, without = float("inf"), float("inf")
        for _ in range(rounds):
            with_guard = min(with_guard, await _per_call(guarded, n))
            without = min(without, await _per_call(bare, n))
        best[name] = (with_guard, without)
    await queue.close()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for name, (with_guard, without) in asyncio.run(measure(args.n, args.rounds)).items():
        print(
            f"{name}: {with_guard:.0f} ns guarded, {without:.0f} ns bare: "
            f"{with_guard - without:+.0f} ns per call"
        )


if __name__ == "__main__":
    main()
