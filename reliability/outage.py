"""Scenario (k): the server (Redis, PostgreSQL) away for 10 s under worker processes that drain.

The "Done when" of issue 19's circuit breaker: a private server (see :mod:`reliability.servers`)
holds ``tasks`` tasks; worker processes drain them; once about a sixth are done the server is
stopped (Redis ``SHUTDOWN SAVE``, PostgreSQL ``pg_ctl stop -m fast``), left down ``down``
seconds, and started again on the same port. The workers are left alone. Meanwhile their
breakers open, claims stop, finished tasks wait in the workers' result buffers, and the
breakers' probes find the server when it is back.

Pass criteria: every task SUCCESS with its own result, each executed exactly once (the lease,
20 s, outlasts the outage, and the finished tasks' acknowledgements wait in the buffer: a
duplicate would be a result lost from it); no worker process died, each exits 0 on SIGTERM;
work resumed (a task *started*, from the tasks' own clock) within ``resume_limit`` seconds of
the server's return; and the workers' logs say so in a few lines, not one per retry: at most
``max_log_lines`` WARNING lines per worker.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from omniq import AsyncOmniQ
from reliability.harness import Outcome, Target, WorkerProcess, records_dir, status_counts
from reliability.servers import PrivatePostgres, PrivateRedis, private_server
from reliability.tasks import read_records, read_starts


@dataclass
class OutageOptions:
    tasks: int = 4_000
    workers: int = 2
    work_ms: float = 20.0
    concurrency: int = 20
    #: longer than the outage: a task claimed before it keeps its claim through it
    lease: float = 20.0
    #: seconds the server stays down
    down: float = 10.0
    resume_limit: float = 2.0
    max_log_lines: int = 12
    deadline: float = 120.0


MODES = {"redis": "shutdown-save", "postgres": "fast"}


async def run(backend: str, options: OutageOptions | None = None) -> Outcome:
    opts = options or OutageOptions()
    outcome = Outcome("k-outage", backend)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix=f"omniq-rel-outage-{backend}-"))
    try:
        with private_server(backend) as server:
            if isinstance(server, PrivateRedis):
                url = f"redis://127.0.0.1:{server.port}/0"
            else:
                url = f"postgresql://postgres@127.0.0.1:{server.port}/postgres?schema=omniq_rel"
            await _run(Target(backend, url, "rel-outage", workdir), server, opts, outcome)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    outcome.seconds = time.monotonic() - started
    return outcome


async def _counts(app: AsyncOmniQ) -> dict[str, int] | None:
    """The store's counts, or None while the server is away (the harness's own breaker opens
    too, and then answers at once)."""
    try:
        return await asyncio.wait_for(status_counts(app), 10)
    except Exception:
        return None


async def _run(
    t: Target, server: PrivateRedis | PrivatePostgres, opts: OutageOptions, outcome: Outcome
) -> None:
    out = records_dir(t)
    async with t.app() as app:
        ids: list[str] = []
        for start in range(0, opts.tasks, 1000):
            ids += await app.enqueue_many(
                [
                    {"func": "reliability.tasks:record_started", "args": (i, out, opts.work_ms)}
                    for i in range(start, min(start + 1000, opts.tasks))
                ]
            )
        # INFO: the breaker's lines; the summary line is turned off
        command = t.worker_command(
            "--concurrency", str(opts.concurrency), "--log-level", "INFO"
        )  # fmt: skip
        env = {"OMNIQ_LEASE_TIMEOUT": str(opts.lease)}
        procs = [WorkerProcess(command, t.workdir / "logs", env) for _ in range(opts.workers)]
        try:
            began = time.monotonic()
            done_before = 0
            while time.monotonic() - began < opts.deadline:
                done_before = (await _counts(app) or {}).get("success", 0)
                if done_before >= opts.tasks // 6:
                    break
                await asyncio.sleep(0.02)
            away = await asyncio.to_thread(server.restart, MODES[t.backend], opts.down)
            back_at = time.time()
            counts: dict[str, int] = {}
            while time.monotonic() - began < opts.deadline:
                counts = await _counts(app) or counts
                if counts.get("success", 0) >= opts.tasks:
                    break
                await asyncio.sleep(0.2)
            died = [p.pid for p in procs if not p.alive]
            results = await app.result_store.get_many(ids)
        finally:
            codes = [p.stop(30) for p in procs]
    logs = [p.output() for p in procs]
    per_key = Counter(int(k) for k, _ in read_records(out))
    after = [s for s in read_starts(out) if s >= back_at - 1.0]
    resumed = max(0.0, min(after) - back_at) if after else None
    wrong = sum(1 for i, tid in enumerate(ids) if tid not in results or results[tid].result != i)
    warnings = [sum(1 for line in log.splitlines() if "WARNING" in line) for log in logs]
    opened = [log.count("circuit breaker OPEN") for log in logs]
    closed = [log.count("circuit breaker CLOSED") for log in logs]
    lost = opts.tasks - counts.get("success", 0)
    duplicates = sum(n - 1 for n in per_key.values() if n > 1)
    outcome.figures.update(
        tasks=opts.tasks,
        done_before_outage=done_before,
        server_away_s=round(away, 2),
        resumed_after_return_s=None if resumed is None else round(resumed, 3),
        status_counts=dict(sorted(counts.items())),
        lost=lost,
        never_executed=opts.tasks - len(per_key),
        duplicates=duplicates,
        results_missing_or_wrong=wrong,
        worker_processes_died=len(died),
        exit_codes_on_sigterm=codes,
        warning_lines_per_worker=warnings,
        breaker_opened_lines_per_worker=opened,
        breaker_closed_lines_per_worker=closed,
        first_worker_warnings=[
            line[:160] for line in logs[0].splitlines() if "WARNING" in line or " INFO " in line
        ][:30],
    )
    outcome.headline = (
        f"away {away:.1f}s with {done_before}/{opts.tasks} done; resumed after "
        f"{resumed if resumed is None else round(resumed, 2)}s; lost {lost}, duplicates "
        f"{duplicates}, workers died {len(died)}"
    )
    outcome.expect_equal("lost", lost, 0)
    outcome.expect_equal("never executed", opts.tasks - len(per_key), 0)
    outcome.expect_equal("executed more than once", duplicates, 0)
    outcome.expect_equal("results missing or wrong", wrong, 0)
    outcome.expect_equal("worker processes died", len(died), 0)
    outcome.expect_equal("exit codes on SIGTERM", codes, [0] * len(procs))
    outcome.check(
        f"work resumed within {opts.resume_limit}s of the server's return",
        resumed is not None and resumed <= opts.resume_limit,
        f"measured {resumed!r}",
    )
    outcome.check(
        "each worker logged its breaker opening and closing",
        all(n >= 1 for n in opened) and opened == closed,
        f"measured {opened} opened, {closed} closed",
    )
    outcome.check(
        f"at most {opts.max_log_lines} WARNING lines per worker",
        all(n <= opts.max_log_lines for n in warnings),
        f"measured {warnings}",
    )
