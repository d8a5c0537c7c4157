"""CPU cost per task of the metrics and tracing hooks, in one process on the memory backend (the
store's own cost is smallest there, and CPU time is less disturbed by a loaded machine than wall
time):

    PYTHONPATH=. uv run python -m benchmarks.hooks_cost -n 20000 --rounds 3

Prints, for each mode (off; empty-hooks: two async hooks that do nothing, the worker's callback
dispatch alone; metrics; tracing), the worker's CPU microseconds per task of each round; a mode's
cost is its difference with ``off``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from benchmarks.noop import noop
from omniq import AsyncOmniQ
from omniq.backend import create_backend
from omniq.callbacks import TaskOutcome, default_hooks, enqueue_hooks, run_wrappers


class DropExporter(SpanExporter):
    """A span exporter that drops the spans: the cost measured is OmniQ's and the SDK's."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


async def drain(n: int, mode: str) -> float:
    """CPU seconds per task for a worker in this process to drain ``n`` no-op tasks."""
    oq = AsyncOmniQ.from_backend(create_backend(url="memory://"))
    undo = None
    if mode == "empty-hooks":  # what the worker's callback dispatch alone costs

        async def nothing(outcome: TaskOutcome) -> None:
            return None

        for event in ("start", "success"):
            oq.callbacks.on(event, nothing)
    elif mode == "metrics":
        from omniq.observability.prometheus import TaskMetrics

        undo = TaskMetrics().install().close
    elif mode == "tracing":
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from omniq.observability.tracing import TaskTracing

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(DropExporter()))
        undo = TaskTracing(provider).install().uninstall
    try:
        async with oq:
            ids = await oq.enqueue_many([{"func": noop, "args": (i,)} for i in range(n)])
            cpu = time.process_time()
            await oq.start_worker(concurrency=100)
            await oq.get_results(ids, timeout=300)
            await oq.stop_worker()
            return (time.process_time() - cpu) / n
    finally:
        if undo is not None:
            undo()
        assert not enqueue_hooks
        assert not default_hooks
        assert not run_wrappers


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    modes = ("off", "empty-hooks", "metrics", "tracing")
    found: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(args.rounds):
        for mode in modes:  # interleaved, so a change in the machine's load hits every mode
            found[mode].append(asyncio.run(drain(args.n, mode)) * 1e6)
    for mode in modes:
        rounds = ", ".join(f"{us:.0f}" for us in found[mode])
        print(
            f"{mode:11} CPU µs per task: {rounds} (median {sorted(found[mode])[len(found[mode]) // 2]:.0f})"
        )


if __name__ == "__main__":
    main()
