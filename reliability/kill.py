"""Scenario (a): worker processes SIGKILLed on a schedule while they drain a queue.

``workers`` processes (``python -m omniq worker``) drain ``tasks`` tasks; every ``kill_every``
seconds one of them is SIGKILLed (no handler runs, nothing is handed back) and a new one started in
its place, as a supervisor would. Each task appends ``<key> <pid>`` to a file of its process, so
executions are counted outside the store under test.

Pass criteria:
- lost = 0: every task ends SUCCESS with its result stored, and every key was executed;
- unexplained duplicates = 0: a task may run again only after a run in a worker that was killed
  (at-least-once covers a crash between the work and its acknowledgement), never twice in live
  workers;
- duplicates <= tasks in flight in killed workers (counted as RUNNING under their pid right after
  each kill);
- dead = 0, and no worker process exits unless it was killed; each one stopped with SIGTERM at
  the end exits 0.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from dataclasses import dataclass

from omniq import AsyncOmniQ, TaskStatus
from reliability.harness import (
    Outcome,
    Target,
    WorkerProcess,
    pid_of_worker_id,
    records_dir,
    status_counts,
    target,
)
from reliability.tasks import read_records

TASK = "reliability.tasks:record"


@dataclass
class KillOptions:
    tasks: int = 10_000
    workers: int = 4
    kill_every: float = 2.0
    #: each task sleeps this long, so a kill usually finds tasks mid-run
    work_ms: float = 20.0
    concurrency: int = 10
    #: short leases make a killed worker's tasks come back within seconds
    lease: float = 2.0
    #: longest the kill phase may last; the run fails if the tasks have not drained by then
    deadline: float = 600.0
    #: after a kill phase that ran out of time: how long the survivors get to finish the rest
    settle: float = 60.0


async def run(backend: str, options: KillOptions | None = None) -> Outcome:
    opts = options or KillOptions()
    outcome = Outcome("a-kill-workers", backend)
    started = time.monotonic()
    async with target(backend) as t:
        await _run(t, opts, outcome)
    outcome.seconds = time.monotonic() - started
    return outcome


async def _run(t: Target, opts: KillOptions, outcome: Outcome) -> None:
    out = records_dir(t)
    app = t.app()
    async with app:
        ids: list[str] = []
        for start in range(0, opts.tasks, 1000):
            ids += await app.enqueue_many(
                [
                    {"func": TASK, "args": (i, out, opts.work_ms)}
                    for i in range(start, min(start + 1000, opts.tasks))
                ]
            )
        key_of = {task_id: i for i, task_id in enumerate(ids)}

        command = t.worker_command("--concurrency", str(opts.concurrency))
        env = {"OMNIQ_LEASE_TIMEOUT": str(opts.lease)}
        slots = [WorkerProcess(command, t.workdir / "logs", env) for _ in range(opts.workers)]
        everyone = list(slots)
        killed_pids: set[int] = set()
        in_flight_at_kills = 0
        unexpected_exits: list[str] = []
        victim = 0
        began = time.monotonic()
        next_kill = began + opts.kill_every
        counts: dict[str, int] = {}
        drained_during_kills = False
        try:
            # phase 1: kill one worker every `kill_every` seconds until every task succeeded
            while time.monotonic() - began < opts.deadline:
                counts = await status_counts(app)
                if counts.get("success", 0) >= opts.tasks:
                    drained_during_kills = True
                    break
                for i, proc in enumerate(slots):
                    if not proc.alive:  # exited although nobody killed it: report, replace
                        unexpected_exits.append(f"pid {proc.pid} exit {proc.process.returncode}")
                        slots[i] = WorkerProcess(command, t.workdir / "logs", env)
                        everyone.append(slots[i])
                if time.monotonic() >= next_kill:
                    next_kill += opts.kill_every
                    proc = slots[victim % len(slots)]
                    victim += 1
                    proc.kill()
                    killed_pids.add(proc.pid)
                    in_flight_at_kills += await _running_under(app, proc.pid)
                    fresh = WorkerProcess(command, t.workdir / "logs", env)
                    slots[slots.index(proc)] = fresh
                    everyone.append(fresh)
                await asyncio.sleep(0.1)
            elapsed = time.monotonic() - began
            # phase 2 (only when phase 1 ran out of time): no more kills; what is left must
            # still finish once leases run out, or it is lost
            settle_began = time.monotonic()
            while not drained_during_kills and time.monotonic() - settle_began < opts.settle:
                counts = await status_counts(app)
                if counts.get("success", 0) >= opts.tasks:
                    break
                await asyncio.sleep(0.2)
            settle = time.monotonic() - settle_began
        finally:
            exit_codes = [proc.stop(30) for proc in slots]
            for proc in everyone:
                if proc.alive:
                    proc.kill()
        counts = await status_counts(app)
        results = await app.result_store.get_many(ids)

    # what the workers actually ran, read from the files they appended to
    executions: dict[int, list[int]] = defaultdict(list)
    for key, pid in read_records(out):
        executions[int(key)].append(pid)
    per_key = Counter({k: len(v) for k, v in executions.items()})
    duplicates = sum(n - 1 for n in per_key.values() if n > 1)
    unexplained = sum(
        max(0, sum(1 for pid in pids if pid not in killed_pids) - 1) for pids in executions.values()
    )
    never_ran = opts.tasks - len(executions)
    wrong_results = sum(
        1
        for task_id, key in key_of.items()
        if task_id not in results or results[task_id].result != key
    )
    succeeded = counts.get("success", 0)
    lost = opts.tasks - succeeded

    outcome.figures.update(
        tasks=opts.tasks,
        workers=opts.workers,
        kill_every_s=opts.kill_every,
        kills=len(killed_pids),
        kill_phase_seconds=round(elapsed, 1),
        drained_while_killing=drained_during_kills,
        settle_seconds_after_kills=None if drained_during_kills else round(settle, 1),
        status_counts=dict(sorted(counts.items())),
        lost=lost,
        never_executed=never_ran,
        results_missing_or_wrong=wrong_results,
        executions=sum(per_key.values()),
        duplicates=duplicates,
        tasks_run_more_than_once=sum(1 for n in per_key.values() if n > 1),
        in_flight_in_killed_workers=in_flight_at_kills,
        unexplained_duplicates=unexplained,
        unexpected_worker_exits=len(unexpected_exits),
    )
    outcome.headline = (
        f"{opts.tasks} tasks, {len(killed_pids)} kills: lost {lost}, duplicates {duplicates} "
        f"(in flight in killed workers {in_flight_at_kills}, unexplained {unexplained})"
    )
    outcome.expect_equal("lost", lost, 0)
    outcome.expect_equal("drained while kills went on", drained_during_kills, True)
    outcome.expect_equal("never executed", never_ran, 0)
    outcome.expect_equal("results missing or wrong", wrong_results, 0)
    outcome.expect_equal("dead", counts.get("dead", 0), 0)
    outcome.expect_equal("unexplained duplicates", unexplained, 0)
    outcome.check(
        "duplicates <= tasks in flight in killed workers",
        duplicates <= in_flight_at_kills,
        f"{duplicates} <= {in_flight_at_kills}",
    )
    outcome.check("kills happened", len(killed_pids) >= 1, f"{len(killed_pids)} kills")
    outcome.check(
        "no worker exited unless killed", not unexpected_exits, "; ".join(unexpected_exits)
    )
    outcome.check(
        "every worker exits 0 on SIGTERM", exit_codes == [0] * len(exit_codes), exit_codes
    )


async def _running_under(app: AsyncOmniQ, pid: int) -> int:
    """Tasks the store shows RUNNING under worker process ``pid`` (claimed, not acknowledged)."""
    running = await app.list_tasks(status=TaskStatus.RUNNING, limit=100_000)
    return sum(1 for task in running if pid_of_worker_id(task.worker_id) == pid)
