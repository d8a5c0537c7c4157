"""Scenario (d): a poison task that ends its process with ``os._exit(1)``.

Two ways it meets a worker, both through ``python -m omniq worker``:

- ``process`` worker type: the task kills the *child* running it. The worker must see the child
  die, retry the task ``max_retries`` times, then mark it DEAD (error ChildProcessDied), replace the
  child, and keep serving: the worker process never restarts.
- ``async`` worker type: the task runs inside the worker process and takes it down. Only the lease
  is left; a supervisor (this harness) restarts the worker, which recovers the lease and runs the
  task again. After ``max_retries + 1`` deaths the recovered task must go DEAD instead of PENDING,
  so the crash loop ends by itself and the next worker lives on.

Pass criteria: poison status = DEAD; poison executions = max_retries + 1 (never more, even a
lease-length later); worker restarts = 0 (process type) or max_retries + 1 (async type) and none
after the task went DEAD; every other task succeeds (lost = 0).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from omniq import AsyncOmniQ, TaskStatus
from reliability.harness import Outcome, Target, WorkerProcess, records_dir, target
from reliability.tasks import read_records


@dataclass
class PoisonOptions:
    worker_type: str = "process"
    max_retries: int = 2
    good_tasks: int = 50
    lease: float = 2.0
    deadline: float = 120.0


async def run(backend: str, options: PoisonOptions | None = None) -> Outcome:
    opts = options or PoisonOptions()
    outcome = Outcome(f"d-poison-{opts.worker_type}", backend)
    started = time.monotonic()
    async with target(backend) as t:
        await _run(t, opts, outcome)
    outcome.seconds = time.monotonic() - started
    return outcome


async def _wait_status(
    app: AsyncOmniQ, task_id: str, wanted: TaskStatus, until: float, supervise: WorkerBox
) -> TaskStatus | None:
    status = None
    while time.monotonic() < until:
        task = await app.get_task(task_id)
        status = task.status if task is not None else None
        if status is wanted:
            break
        supervise.restart_if_dead()
        await asyncio.sleep(0.1)
    return status


class WorkerBox:
    """One worker slot, restarted whenever its process is gone, as systemd's Restart=always."""

    def __init__(self, t: Target, worker_type: str, env: dict[str, str]) -> None:
        self.command = t.worker_command("--type", worker_type, "--concurrency", "4")
        self.logs = t.workdir / "logs"
        self.env = env
        self.proc = WorkerProcess(self.command, self.logs, env)
        self.restarts = 0
        self.exit_codes: list[int | None] = []

    def restart_if_dead(self) -> None:
        if not self.proc.alive:
            self.exit_codes.append(self.proc.process.returncode)
            self.restarts += 1
            self.proc = WorkerProcess(self.command, self.logs, self.env)


async def _run(t: Target, opts: PoisonOptions, outcome: Outcome) -> None:
    out = records_dir(t)
    expected = opts.max_retries + 1
    async with t.app() as app:
        box = WorkerBox(t, opts.worker_type, {"OMNIQ_LEASE_TIMEOUT": str(opts.lease)})
        try:
            poison = await app.enqueue(
                "reliability.tasks:die",
                args=(out,),
                max_retries=opts.max_retries,
                retry_delay=0.05,
            )
            good = await app.enqueue_many(
                [
                    {"func": "reliability.tasks:record_sync", "args": (i, out), "max_retries": 8}
                    for i in range(opts.good_tasks)
                ]
            )
            began = time.monotonic()
            status = await _wait_status(app, poison, TaskStatus.DEAD, began + opts.deadline, box)
            to_dead = time.monotonic() - began
            restarts_until_dead = box.restarts
            # the loop must have ended: wait out a few leases and look again
            quiet_until = time.monotonic() + 2 * opts.lease + 1
            while time.monotonic() < quiet_until:
                box.restart_if_dead()
                await asyncio.sleep(0.1)
            more = await app.enqueue("reliability.tasks:record_sync", args=(-1, out))
            value = await app.get_result(more, timeout=60)
            good_results = await app.result_store.get_many(good)
            final = await app.get_task(poison)
            poison_result = await app.get_task_result(poison)
        finally:
            code = box.proc.stop(30)

    deaths = sum(1 for key, _ in read_records(out) if key == "die")
    good_ok = sum(
        1 for i, tid in enumerate(good) if tid in good_results and good_results[tid].result == i
    )
    outcome.figures.update(
        worker_type=opts.worker_type,
        max_retries=opts.max_retries,
        poison_status=status.value if status else None,
        poison_attempts=final.attempts if final else None,
        poison_error=f"{final.error_type}: {final.error_message}" if final else None,
        poison_result_error=poison_result.error_type if poison_result else None,
        seconds_to_dead=round(to_dead, 1),
        poison_executions=deaths,
        worker_restarts=box.restarts,
        worker_restarts_after_dead=box.restarts - restarts_until_dead,
        other_tasks_succeeded=f"{good_ok}/{opts.good_tasks}",
        task_after_dead=value,
    )
    outcome.headline = (
        f"{opts.worker_type} worker: {status.value if status else None} after {deaths} runs, "
        f"{box.restarts} worker restarts, others {good_ok}/{opts.good_tasks}"
    )
    outcome.expect_equal("poison status", status, TaskStatus.DEAD)
    outcome.expect_equal("poison executions", deaths, expected)
    outcome.expect_equal("worker restarts after DEAD", box.restarts - restarts_until_dead, 0)
    wanted_restarts = 0 if opts.worker_type == "process" else expected
    outcome.expect_equal("worker restarts", box.restarts, wanted_restarts)
    outcome.expect_equal("lost (other tasks not succeeded)", opts.good_tasks - good_ok, 0)
    outcome.expect_equal("a task enqueued after DEAD returns", value, -1)
    outcome.check(
        "the failure is stored as the poison task's result",
        poison_result is not None and poison_result.error_type is not None,
        poison_result.error_type if poison_result else "no result",
    )
    outcome.expect_equal("worker exit on SIGTERM", code, 0)
