"""Scenario (i): ``enqueue_many`` is all or nothing, proved by SIGKILLing a real producer.

A producer process (``python -m reliability.batches produce <spec>``) enqueues one batch of
50,000 tasks with fixed ids, some of them waiting on a task of another part of the batch (a
dependency 1,500 tasks later, so it crosses the 1,000-task pieces Redis sends). One unkilled
run first measures how long the call takes; then, each time in a fresh place, a producer is
SIGKILLed at 20 %, 50 % and 80 % of that time, mid-call. After each kill:

- the store holds none of the batch or all of it, never a part (and a waiting task is never
  cancelled for a dependency that "no longer exists": the dependency sweep runs and must cancel
  nothing);
- the same batch sent again (a new producer, same ids) leaves every task stored exactly once:
  50,000 tasks, each id once, the waiting ones still waiting.

Pass criteria: partial batches = 0; tasks after the retry = 50,000 exactly, each id once;
waiting tasks cancelled = 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

from omniq import TaskStatus
from omniq.backend import create_backend
from omniq.models.task import Task
from reliability.harness import ROOT, Outcome, Target, target

TASKS = 50_000
#: a task every this many waits on the task this many places later (another piece on Redis)
DEPENDENCY_EVERY = 97
DEPENDENCY_GAP = 1_500
KILL_AT = (0.2, 0.5, 0.8)


def _batch(count: int) -> list[Task]:
    tasks = [
        Task(func="reliability.tasks:record_sync", args=(i, "unused"), id=f"batch-{i:06d}")
        for i in range(count)
    ]
    for i in range(0, count - DEPENDENCY_GAP, DEPENDENCY_EVERY):
        tasks[i].depends_on = (tasks[i + DEPENDENCY_GAP].id,)
    return tasks


def _waiting_ids(count: int) -> set[str]:
    return {t.id for t in _batch(count) if t.depends_on}


# -- the producer: a process of its own -----------------------------------------------------------
async def _produce(spec: dict[str, Any]) -> None:
    tasks = _batch(spec["tasks"])
    backend = create_backend(url=spec["url"], project_name=spec["project"])
    async with backend.queue as queue:
        print("enqueueing", flush=True)
        began = time.monotonic()
        await queue.enqueue_many(tasks)
        print(f"done {time.monotonic() - began:.3f}", flush=True)


class _Producer:
    def __init__(self, t: Target, tasks: int) -> None:
        spec = {"url": t.url, "project": t.project, "tasks": tasks}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reliability.batches", "produce", json.dumps(spec)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_enqueueing(self) -> float:
        """Blocks until the producer is inside ``enqueue_many``; returns that moment."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("enqueueing"):
            raise RuntimeError(f"producer did not start: {line!r} {self._stderr()}")
        return time.monotonic()

    def finish(self, timeout: float = 600) -> float:
        """Waits for a producer left alone; returns the seconds its call took."""
        out, err = self.process.communicate(timeout=timeout)
        said = [line.split() for line in out.splitlines() if line.startswith("done ")]
        if self.process.returncode != 0 or not said:
            raise RuntimeError(f"producer failed ({self.process.returncode}): {err[-2000:]}")
        return float(said[0][1])

    def kill(self) -> bool:
        """SIGKILL; True if the call was still under way (the producer had not said done)."""
        os.kill(self.process.pid, signal.SIGKILL)
        out, _ = self.process.communicate(timeout=30)
        return "done" not in out

    def _stderr(self) -> str:
        self.process.kill()
        _, err = self.process.communicate(timeout=30)
        return err[-2000:]


# -- the scenario ---------------------------------------------------------------------------------
async def _stored(t: Target) -> tuple[int, list[Task]]:
    """How many tasks the store holds, and the tasks themselves (to check ids and states)."""
    async with t.app() as app:
        # first the dependency sweep: a waiting task whose dependency is not stored would be
        # cancelled here ("dependency ... no longer exists")
        await app.task_queue.settle_waiting(limit=TASKS)
        stats = await app.task_queue.stats()
        count = sum(sum(by_status.values()) for by_status in stats.values())
        tasks = await app.list_tasks(limit=count + 10) if count else []
    return count, tasks


async def run(backend: str, tasks: int = TASKS) -> Outcome:
    outcome = Outcome("i-batches", backend)
    started = time.monotonic()
    waiting = _waiting_ids(tasks)
    async with target(backend) as t:
        producer = _Producer(t, tasks)
        producer.wait_enqueueing()
        took = producer.finish()
        count, _ = await _stored(t)
        outcome.figures["batch"] = f"{tasks:,} tasks ({len(waiting):,} waiting on another part)"
        outcome.figures["enqueue_many call, unkilled (s)"] = f"{took:.2f}"
        outcome.expect_equal("tasks stored by an unkilled producer", count, tasks)

    partial: list[int] = []
    mid_call = 0
    after_kill: list[int] = []
    for fraction in KILL_AT:
        async with target(backend) as t:
            producer = _Producer(t, tasks)
            entered = producer.wait_enqueueing()
            await asyncio.sleep(max(0.0, entered + took * fraction - time.monotonic()))
            mid_call += producer.kill()
            count, _ = await _stored(t)
            after_kill.append(count)
            if count not in (0, tasks):
                partial.append(count)
            _Producer(t, tasks).finish()  # the retry: the same batch, the same ids
            count, stored = await _stored(t)
            ids = [task.id for task in stored]
            cancelled = [task.id for task in stored if task.id in waiting and task.is_final]
            still_waiting = sum(1 for task in stored if task.status is TaskStatus.WAITING)
            outcome.expect_equal(f"tasks after the retry (kill at {fraction:.0%})", count, tasks)
            outcome.expect_equal(
                f"distinct ids after the retry (kill at {fraction:.0%})", len(set(ids)), tasks
            )
            outcome.expect_equal(
                f"waiting tasks cancelled (kill at {fraction:.0%})", len(cancelled), 0
            )
            outcome.expect_equal(
                f"tasks still waiting (kill at {fraction:.0%})", still_waiting, len(waiting)
            )
    outcome.figures["producers killed mid-call"] = f"{mid_call}/{len(KILL_AT)}"
    outcome.figures["tasks stored right after each kill"] = ", ".join(f"{n:,}" for n in after_kill)
    outcome.figures["partial batches"] = len(partial)
    outcome.expect_equal("partial batches (neither none nor all stored)", partial, [])
    outcome.check("at least one producer killed mid-call", mid_call >= 1, f"{mid_call}")
    outcome.seconds = time.monotonic() - started
    outcome.headline = (
        f"killed mid-call {mid_call}/{len(KILL_AT)}; partial batches {len(partial)}; "
        f"after kill {'/'.join(str(n) for n in after_kill)}; "
        f"retry {'stored all once' if outcome.passed else 'FAILED'}"
    )
    return outcome


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "produce":
        raise SystemExit("usage: python -m reliability.batches produce <spec json>")
    asyncio.run(_produce(json.loads(sys.argv[2])))
