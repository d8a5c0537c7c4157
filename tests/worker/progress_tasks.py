"""Task functions that report progress, importable by worker processes and their children."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import omniq


def report_steps(steps: int, pause: float = 0.0) -> int:
    """A sync task: reports each step, the last one as 1.0."""
    for n in range(1, steps + 1):
        omniq.current_task().set_progress(n / steps, note=f"step {n} of {steps}", data={"n": n})
        if pause:
            time.sleep(pause)
    return steps


async def report_steps_async(steps: int, pause: float = 0.0) -> int:
    for n in range(1, steps + 1):
        omniq.current_task().set_progress(n / steps, note=f"step {n} of {steps}")
        await asyncio.sleep(pause)
    return steps


def report_then_wait(fraction: float, marker: str, release: str) -> str:
    """Reports ``fraction``, tells the test it did (``marker``), and waits until the test
    creates ``release``: the test reads the progress of a task that is still running."""
    context = omniq.current_task()
    context.set_progress(fraction, note=f"pid {os.getpid()}", data={"pid": os.getpid()})
    Path(marker).write_text(context.id)
    deadline = time.monotonic() + 60
    while not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    context.set_progress(1.0, note="released")
    return "released"


def bad_progress(value: object) -> None:
    omniq.current_task().set_progress(value)  # type: ignore[arg-type]


def no_report() -> int:
    return 1
