"""The OmniQ demo: a realistic mix of tasks on the embedded default backend, end to end.

Run it with ``python -m omniq.demo``. It exits 0 only if every task ended as expected.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from typing import Any

from omniq import AsyncOmniQ, TaskFailedError
from omniq.storage.memory import AsyncMemoryEventStorage

_flaky_calls: Counter[str] = Counter()


def resize_image(name: str, width: int) -> str:
    time.sleep(0.05)  # a blocking call: runs in the worker's thread pool
    return f"{name}@{width}px"


async def fetch_page(url: str) -> int:
    await asyncio.sleep(0.05)  # I/O: runs on the worker's event loop
    return len(url) * 100


def flaky_payment(order_id: int) -> str:
    _flaky_calls[str(order_id)] += 1
    if _flaky_calls[str(order_id)] < 2:
        raise ConnectionError(f"payment gateway timed out for order {order_id}")
    return f"order {order_id} paid"


def send_reminder(user: str) -> str:
    return f"reminded {user}"


def always_broken() -> None:
    raise ValueError("this task is meant to fail")


async def main() -> int:
    events = AsyncMemoryEventStorage()
    async with AsyncOmniQ(project_name="demo", event_store=events) as oq:
        expected: dict[str, tuple[str, Any]] = {}
        started = time.perf_counter()
        for i, queue in enumerate(("high", "medium", "low")):
            tid = await oq.enqueue(resize_image, args=(f"photo{i}.jpg", 640), queue_name=queue)
            expected[tid] = (f"resize_image on {queue}", f"photo{i}.jpg@640px")
        tid = await oq.enqueue(fetch_page, args=("https://example.org",), priority=5)
        expected[tid] = ("fetch_page (async)", 1900)
        tid = await oq.enqueue(flaky_payment, args=(42,), max_retries=2, retry_delay=0.05)
        expected[tid] = ("flaky_payment (retried)", "order 42 paid")
        tid = await oq.enqueue(send_reminder, args=("ada",), run_in=0.5)
        expected[tid] = ("send_reminder (delayed 0.5s)", "reminded ada")
        tid = await oq.enqueue(always_broken, max_retries=1, retry_delay=0.05)
        expected[tid] = ("always_broken (dead-lettered)", TaskFailedError)

        await oq.start_worker(queues=["high", "medium", "low", "default"], concurrency=8)
        print(f"OmniQ demo: {len(expected)} tasks on {oq.task_queue.backend_name}\n")
        ok = True
        rows = []
        for tid, (label, want) in expected.items():
            try:
                got: Any = await oq.get_result(tid, timeout=10)
            except TaskFailedError as exc:
                got = exc
            passed = isinstance(got, want) if isinstance(want, type) else got == want
            ok &= passed
            shown = (
                f"{type(got).__name__}: {got.error_message}"
                if isinstance(got, TaskFailedError)
                else repr(got)
            )
            rows.append((label, shown, "ok" if passed else f"UNEXPECTED (wanted {want!r})"))
        elapsed = time.perf_counter() - started
        width = max(len(r[0]) for r in rows)
        for label, shown, verdict in rows:
            print(f"  {label:<{width}}  {shown:<45} {verdict}")
        summary = Counter(e.event_type.value for e in await oq.get_events(limit=10_000))
        print("\nevents: " + ", ".join(f"{k}={v}" for k, v in sorted(summary.items())))
        print(
            f"done in {elapsed:.2f}s: {'all tasks ended as expected' if ok else 'SOME TASKS FAILED'}"
        )
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
