"""Scenario (c): a task that hangs past its timeout, in a worker with ONE slot.

With ``--concurrency 1`` the next task can only run if the hung one's slot is really freed, so
"the next task runs" proves more than a report. Per worker type (``python -m omniq worker --type``):

- ``async`` with an async task: cancelled at its timeout (the task itself records that it saw the
  cancellation, so it was stopped, not abandoned);
- ``process``: the child is killed (its pid is gone afterwards) and replaced (the next task runs in
  another pid);
- ``thread`` (and ``async`` with a *sync* task, which runs in a thread): a thread cannot be killed;
  the task is reported as timed out and its thread abandoned, and the next task must still run.

Pass criteria: hung task = DEAD with TaskTimeout; seconds from start to failure < timeout + 3;
the following tasks all succeed (within 30 s); plus the type's own proof above.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from omniq import TaskStatus
from reliability.harness import Outcome, Target, WorkerProcess, records_dir, target
from reliability.tasks import read_records

#: (worker type, hanging function) pairs the scenario runs
CASES = (
    ("async", "reliability.tasks:hang_async"),
    ("process", "reliability.tasks:hang_sync"),
    ("thread", "reliability.tasks:hang_sync"),
    ("async", "reliability.tasks:hang_sync"),
)


@dataclass
class TimeoutOptions:
    timeout: float = 1.0
    followers: int = 5


async def run(
    backend: str, worker_type: str, func: str, options: TimeoutOptions | None = None
) -> Outcome:
    opts = options or TimeoutOptions()
    kind = "async task" if func.endswith("hang_async") else "sync task"
    outcome = Outcome(f"c-timeout-{worker_type}-{kind.replace(' ', '-')}", backend)
    started = time.monotonic()
    async with target(backend) as t:
        await _run(t, worker_type, func, opts, outcome)
    outcome.seconds = time.monotonic() - started
    return outcome


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers signal 0 until reaped; its state letter says it is gone
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def _run(
    t: Target, worker_type: str, func: str, opts: TimeoutOptions, outcome: Outcome
) -> None:
    out = records_dir(t)
    async with t.app() as app:
        hung = await app.enqueue(func, args=(out,), timeout=opts.timeout, max_retries=0)
        followers = await app.enqueue_many(
            [
                {"func": "reliability.tasks:record_sync", "args": (i, out)}
                for i in range(opts.followers)
            ]
        )
        command = t.worker_command("--type", worker_type, "--concurrency", "1")
        worker = WorkerProcess(command, t.workdir / "logs")
        try:
            failed = await app.get_task_result(hung, timeout=60)
            until = time.monotonic() + 30
            results = [
                await app.get_task_result(f, timeout=max(0.0, until - time.monotonic()))
                for f in followers
            ]
            stuck = [
                task.status.value
                for f in followers
                if (task := await app.get_task(f)) is not None and not task.status.is_final
            ]
            task = await app.get_task(hung)
            records = read_records(out)
            alive = worker.alive
            hung_child_alive = {p: _pid_alive(p) for k, p in records if k == "hang-started"}
        finally:
            code = worker.stop(10)
    ran = sum(1 for i, r in enumerate(results) if r is not None and r.result == i)
    hang_pids = [pid for key, pid in records if key == "hang-started"]
    follower_pids = {pid for key, pid in records if key.isdigit()}
    ran_for = (
        (task.finished_at - task.started_at).total_seconds()
        if task is not None and task.finished_at and task.started_at
        else None
    )
    outcome.figures.update(
        worker_type=worker_type,
        task=func.rpartition(":")[2],
        timeout_s=opts.timeout,
        hung_status=task.status.value if task else None,
        hung_error=failed.error_type if failed else None,
        seconds_started_to_failed=round(ran_for, 2) if ran_for is not None else None,
        followers_succeeded=f"{ran}/{opts.followers}",
        followers_not_finished=", ".join(stuck) or "none",
        worker_exit_on_sigterm=code,
    )
    outcome.expect_equal("hung task status", task.status if task else None, TaskStatus.DEAD)
    outcome.expect_equal("hung task error", failed.error_type if failed else None, "TaskTimeout")
    outcome.check(
        "seconds from start to failure < timeout + 3",
        ran_for is not None and ran_for < opts.timeout + 3,
        ran_for,
    )
    outcome.expect_equal("tasks after it that succeeded", ran, opts.followers)
    outcome.check("worker alive", alive, f"exit {worker.process.returncode}")
    if func.endswith("hang_async"):
        cancelled = any(key == "hang-cancelled" for key, _ in records)
        outcome.figures["task saw its cancellation"] = cancelled
        outcome.expect_equal("task saw its cancellation", cancelled, True)
    if worker_type == "process":
        gone = bool(hang_pids) and not any(hung_child_alive.values())
        outcome.figures["hung child pids"] = hang_pids
        replaced = bool(follower_pids) and not (follower_pids & set(hang_pids))
        outcome.figures["hung child killed"] = gone
        outcome.figures["next tasks in a new child"] = replaced
        outcome.expect_equal("hung child killed", gone, True)
        outcome.expect_equal("next tasks in a new child", replaced, True)
    outcome.expect_equal("worker exit on SIGTERM", code, 0)
    outcome.headline = (
        f"{worker_type}/{outcome.figures['task']}: {outcome.figures['hung_error']} after "
        f"{outcome.figures['seconds_started_to_failed']}s (timeout {opts.timeout}s), next "
        f"{ran}/{opts.followers} ran"
    )
