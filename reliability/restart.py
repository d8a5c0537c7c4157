"""Scenario (b): the server (Redis, PostgreSQL) restarted under worker processes mid-run.

A private server (see :mod:`reliability.servers`) holds ``tasks`` tasks; two worker processes
drain them; once about a fifth are done, the server is stopped, left down ``down`` seconds, and
started again: Redis with ``SHUTDOWN SAVE`` and a new start on the same directory (a graceful
restart that keeps the data), PostgreSQL with ``pg_ctl stop -m fast`` or ``-m immediate`` (the
start then runs crash recovery from the WAL). The workers are left alone: they must reconnect by
themselves.

Pass criteria: lost = 0 (every task SUCCESS with its result, every key executed); worker
processes restarted = 0 (none died); each exits 0 on SIGTERM. Duplicates are counted and
reported: a restart may break the acknowledgement of tasks that already ran.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from omniq import AsyncOmniQ
from reliability.harness import Outcome, Target, WorkerProcess, records_dir, status_counts
from reliability.servers import PrivatePostgres, PrivateRedis, private_server
from reliability.tasks import read_records


@dataclass
class RestartOptions:
    tasks: int = 3_000
    workers: int = 2
    work_ms: float = 10.0
    concurrency: int = 10
    lease: float = 10.0
    #: seconds the server stays down between its stop and its start
    down: float = 3.0
    deadline: float = 180.0


#: backend -> the restart modes it is tried with
MODES = {"redis": ("shutdown-save",), "postgres": ("fast", "immediate")}


async def run(backend: str, mode: str, options: RestartOptions | None = None) -> Outcome:
    opts = options or RestartOptions()
    outcome = Outcome(f"b-restart-{mode}", backend)
    started = time.monotonic()
    import tempfile

    workdir = Path(tempfile.mkdtemp(prefix=f"omniq-rel-restart-{backend}-"))
    with private_server(backend) as server:
        if isinstance(server, PrivateRedis):
            url = f"redis://127.0.0.1:{server.port}/0"
        else:
            url = f"postgresql://postgres@127.0.0.1:{server.port}/postgres?schema=omniq_rel"
        t = Target(backend, url, "rel-restart", workdir)
        await _run(t, server, mode, opts, outcome)
    import shutil

    shutil.rmtree(workdir, ignore_errors=True)
    outcome.seconds = time.monotonic() - started
    return outcome


async def _counts(app: AsyncOmniQ) -> dict[str, int] | None:
    """The store's counts, or None while the server is away (the harness's own connections
    meet the restart too)."""
    try:
        return await asyncio.wait_for(status_counts(app), 10)
    except Exception:
        return None


async def _run(
    t: Target,
    server: PrivateRedis | PrivatePostgres,
    mode: str,
    opts: RestartOptions,
    outcome: Outcome,
) -> None:
    out = records_dir(t)
    async with t.app() as app:
        ids: list[str] = []
        for start in range(0, opts.tasks, 1000):
            ids += await app.enqueue_many(
                [
                    {"func": "reliability.tasks:record", "args": (i, out, opts.work_ms)}
                    for i in range(start, min(start + 1000, opts.tasks))
                ]
            )
        command = t.worker_command("--concurrency", str(opts.concurrency))
        env = {"OMNIQ_LEASE_TIMEOUT": str(opts.lease)}
        procs = [WorkerProcess(command, t.workdir / "logs", env) for _ in range(opts.workers)]
        try:
            began = time.monotonic()
            done_before = 0
            while time.monotonic() - began < opts.deadline:
                counts = await _counts(app) or {}
                done_before = counts.get("success", 0)
                if done_before >= opts.tasks // 5:
                    break
                await asyncio.sleep(0.05)
            away = await asyncio.to_thread(server.restart, mode, opts.down)
            restarted_at = time.monotonic()
            counts = {}
            while time.monotonic() - began < opts.deadline:
                counts = await _counts(app) or counts
                if counts.get("success", 0) >= opts.tasks:
                    break
                await asyncio.sleep(0.2)
            drain_after = time.monotonic() - restarted_at
            died = [p.pid for p in procs if not p.alive]
            results = await app.result_store.get_many(ids)
        finally:
            codes = [p.stop(30) for p in procs]

    per_key = Counter(int(k) for k, _ in read_records(out))
    wrong = sum(1 for i, tid in enumerate(ids) if tid not in results or results[tid].result != i)
    lost = opts.tasks - counts.get("success", 0)
    duplicates = sum(n - 1 for n in per_key.values() if n > 1)
    outcome.figures.update(
        mode=mode,
        tasks=opts.tasks,
        done_before_restart=done_before,
        server_away_s=round(away, 2),
        drain_after_restart_s=round(drain_after, 1),
        status_counts=dict(sorted(counts.items())),
        lost=lost,
        never_executed=opts.tasks - len(per_key),
        results_missing_or_wrong=wrong,
        duplicates=duplicates,
        worker_processes_died=len(died),
        exit_codes_on_sigterm=codes,
    )
    outcome.headline = (
        f"{mode}: away {away:.1f}s with {done_before}/{opts.tasks} done; lost {lost}, "
        f"duplicates {duplicates}, workers died {len(died)}"
    )
    outcome.expect_equal("lost", lost, 0)
    outcome.expect_equal("never executed", opts.tasks - len(per_key), 0)
    outcome.expect_equal("results missing or wrong", wrong, 0)
    outcome.expect_equal("worker processes died", len(died), 0)
    outcome.expect_equal("exit codes on SIGTERM", codes, [0] * len(procs))
