"""Scenario (j): clients waiting on results while the server (PostgreSQL, Redis) restarts.

A private server (see :mod:`reliability.servers`) holds ``waiters`` tasks that no worker serves
yet; as many clients call ``get_result(task_id, timeout=None)`` at once, in one process, as an
application gathering results would. Once every client is inside its wait, the server is
stopped, left down ``down`` seconds and started again (PostgreSQL ``pg_ctl stop -m fast``,
Redis ``SHUTDOWN SAVE``). Then a worker process (``omniq worker``) runs the tasks.

Then a second round shows what "until the caller's timeout" means: ``timeout_waiters`` clients
wait with ``timeout=timeout_s`` while the server stays down longer than that; each must raise
``BackendUnavailable`` naming the server, never its password (the PostgreSQL URL carries one;
the private server trusts every connection, so it is accepted and must simply not show).

Pass criteria: waiters raised = 0 and every waiter gets its own task's value; in the second
round every waiter raises BackendUnavailable naming the server, no sooner than its timeout, and
without the password; the client's log holds no traceback, and one "unreachable" warning line
per outage.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from omniq import AsyncOmniQ
from omniq.exceptions import BackendUnavailable
from reliability.harness import Outcome, Target, WorkerProcess, records_dir
from reliability.servers import PrivatePostgres, PrivateRedis, private_server

PASSWORD = "waiters-s3cret"


@dataclass
class WaitersOptions:
    waiters: int = 300
    #: seconds the server stays down in the first round
    down: float = 3.0
    timeout_waiters: int = 50
    #: the second round's get_result timeout; the server stays down twice as long
    timeout_s: float = 3.0


class _Lines(logging.Handler):
    """Every log record of the client process, to count tracebacks and outage lines."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def run(backend: str, options: WaitersOptions | None = None) -> Outcome:
    opts = options or WaitersOptions()
    outcome = Outcome("j-waiters", backend)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix=f"omniq-rel-waiters-{backend}-"))
    lines = _Lines()
    root = logging.getLogger()
    root.addHandler(lines)
    try:
        with private_server(backend) as server:
            if isinstance(server, PrivateRedis):
                url = f"redis://127.0.0.1:{server.port}/0"
            else:
                url = (
                    f"postgresql://postgres:{PASSWORD}@127.0.0.1:{server.port}/postgres"
                    "?schema=omniq_rel"
                )
            t = Target(backend, url, "rel-waiters", workdir)
            await _restart_mid_wait(t, server, opts, outcome)
            await _timeout_runs_out(t, server, opts, outcome)
    finally:
        root.removeHandler(lines)
        shutil.rmtree(workdir, ignore_errors=True)
    tracebacks = [r for r in lines.records if r.exc_info and r.levelno >= logging.WARNING]
    outage_lines = [r for r in lines.records if "is unreachable" in r.getMessage()]
    outcome.figures["tracebacks logged by the client"] = len(tracebacks)
    outcome.figures["outage warning lines (2 outages)"] = len(outage_lines)
    outcome.expect_equal("tracebacks logged by the client", len(tracebacks), 0)
    outcome.expect_equal("outage warning lines, one per outage", len(outage_lines), 2)
    outcome.seconds = time.monotonic() - started
    outcome.headline = (
        f"waiters raised {outcome.figures.get('waiters raised')} of {opts.waiters} "
        f"(away {outcome.figures.get('server away (s)')} s); "
        f"timeout round: {outcome.figures.get('timed-out waiters raising BackendUnavailable')}"
    )
    return outcome


async def _gather(waits: list[asyncio.Task[object]]) -> list[object | BaseException]:
    return list(await asyncio.gather(*waits, return_exceptions=True))


async def _restart_mid_wait(
    t: Target, server: PrivateRedis | PrivatePostgres, opts: WaitersOptions, outcome: Outcome
) -> None:
    out = records_dir(t)
    async with t.app() as app:
        ids = await app.enqueue_many(
            [
                {"func": "reliability.tasks:echo", "args": (f"v{i}", out)}
                for i in range(opts.waiters)
            ]
        )
        waits = [asyncio.create_task(app.get_result(i, timeout=None)) for i in ids]
        await asyncio.sleep(1.0)  # every client is inside its wait
        mode = "fast" if isinstance(server, PrivatePostgres) else "shutdown-save"
        away = await asyncio.to_thread(server.restart, mode, opts.down)
        await asyncio.sleep(1.0)  # a waiter that gives up does so within this
        raised_meanwhile = sum(1 for w in waits if w.done() and w.exception() is not None)
        worker = WorkerProcess(t.worker_command("--concurrency", "20"), t.workdir / "logs")
        try:
            values = await asyncio.wait_for(_gather(waits), 120)
        finally:
            code = worker.stop(30)
    raised = [v for v in values if isinstance(v, BaseException)]
    right = sum(1 for i, v in enumerate(values) if v == f"v{i}")
    outcome.figures["server away (s)"] = round(away, 2)
    outcome.figures["waiters raised"] = len(raised)
    outcome.figures["waiters raised during the restart"] = raised_meanwhile
    outcome.figures["waiters with their own value"] = f"{right}/{opts.waiters}"
    if raised:
        outcome.figures["first raised"] = repr(raised[0])[:200]
    outcome.expect_equal("waiters raised", len(raised), 0)
    outcome.expect_equal("waiters with their own value", right, opts.waiters)
    outcome.expect_equal("worker exit on SIGTERM", code, 0)


async def _timeout_runs_out(
    t: Target, server: PrivateRedis | PrivatePostgres, opts: WaitersOptions, outcome: Outcome
) -> None:
    out = records_dir(t)
    async with t.app() as app:
        ids = await app.enqueue_many(
            [
                {"func": "reliability.tasks:echo", "args": (f"w{i}", out)}
                for i in range(opts.timeout_waiters)
            ]
        )
        waits = [asyncio.create_task(_timed(app, i, opts.timeout_s)) for i in ids]
        await asyncio.sleep(0.5)
        mode = "fast" if isinstance(server, PrivatePostgres) else "shutdown-save"
        await asyncio.to_thread(server.restart, mode, opts.timeout_s * 2)
        outcomes = await asyncio.wait_for(asyncio.gather(*waits), 60)
        await app.task_queue.purge()
    where = "PostgreSQL at" if isinstance(server, PrivatePostgres) else "Redis at"
    good = [
        (error, waited)
        for error, waited in outcomes
        if isinstance(error, BackendUnavailable)
        and where in str(error)
        and f"127.0.0.1:{server.port}" in str(error)
        and PASSWORD not in str(error)
    ]
    early = [waited for _, waited in outcomes if waited < opts.timeout_s - 0.05]
    outcome.figures["timed-out waiters raising BackendUnavailable"] = (
        f"{len(good)}/{opts.timeout_waiters}"
    )
    outcome.figures["timed-out waiter's error"] = str(outcomes[0][0])[:220]
    outcome.expect_equal(
        "timed-out waiters raising BackendUnavailable naming the server, no password",
        len(good),
        opts.timeout_waiters,
    )
    outcome.expect_equal("waiters giving up before their timeout", len(early), 0)


async def _timed(app: AsyncOmniQ, task_id: str, timeout: float) -> tuple[object, float]:
    began = time.monotonic()
    try:
        return await app.get_result(task_id, timeout=timeout), time.monotonic() - began
    except Exception as exc:
        return exc, time.monotonic() - began
