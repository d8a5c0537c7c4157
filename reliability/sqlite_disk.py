"""Scenario (f): SQLite on a full, then a read-only, filesystem.

A 1 MB tmpfs is mounted (root) and the queue file lives on it:

1. full: tasks of ~4 KB are enqueued until the disk is full. The failing enqueue must raise an
   error that says what happened and names the file; every task whose enqueue returned must still
   be there, and the file must pass ``PRAGMA integrity_check``. The tmpfs is then grown and a
   worker drains every stored task.
2. read-only: the same mount is remounted read-only. An enqueue must fail with a clear error
   naming the file; a worker process must exit 1 with one line naming it (no traceback); after a
   read-write remount the file is intact and every task is still there.

Pass criteria: clear errors = 3; integrity_check = ok (twice); tasks lost = 0; tasks run after
the disk has room again = all stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

from omniq import TaskStatus
from reliability.harness import ROOT, Outcome, Target, WorkerProcess

FILLER = "x" * 4000


def _mount(point: Path, options: str) -> None:
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
        check=True,
        capture_output=True,
    )


def _remount(point: Path, options: str) -> None:
    subprocess.run(
        ["mount", "-o", f"remount,{options}", str(point)], check=True, capture_output=True
    )


def _unmount(point: Path) -> None:
    subprocess.run(["umount", "-l", str(point)], capture_output=True)
    with contextlib.suppress(OSError):
        point.rmdir()


def _integrity(path: Path) -> str:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


async def run(backend: str = "sqlite") -> Outcome:
    outcome = Outcome("f-sqlite-disk", "sqlite")
    started = time.monotonic()
    point = Path(tempfile.mkdtemp(prefix="omniq-rel-disk-"))
    try:
        _mount(point, "size=1m")
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        outcome.check("a 1 MB tmpfs can be mounted (needs root)", False, exc)
        return outcome
    try:
        await _run(point, outcome)
    finally:
        await asyncio.to_thread(_unmount, point)
    outcome.seconds = time.monotonic() - started
    return outcome


def _clear(outcome: Outcome, label: str, message: str, path: Path, words: tuple[str, ...]) -> None:
    outcome.figures[f"{label} error"] = message[:200]
    outcome.check(
        f"{label}: the error names the file and says why",
        str(path) in message and any(w in message.lower() for w in words),
        message[:200],
    )


async def _run(point: Path, outcome: Outcome) -> None:
    db = point / "queue.db"
    t = Target("sqlite", f"sqlite:///{db}", "rel-disk", point)
    stored: list[str] = []
    full_error = ""
    async with t.app() as app:
        for i in range(10_000):
            try:
                stored.append(
                    await app.enqueue(
                        "reliability.tasks:checksum", args=(f"{i}:{FILLER}".encode(),)
                    )
                )
            except Exception as exc:
                full_error = f"{type(exc).__name__}: {exc}"
                break
        # a few more attempts on a full disk must not damage what is there
        for _ in range(3):
            with contextlib.suppress(Exception):
                await app.enqueue("reliability.tasks:checksum", args=(FILLER.encode(),))
        counts = await app.task_queue.stats()
    outcome.figures["tasks stored before full"] = len(stored)
    _clear(outcome, "disk full", full_error, db, ("full", "space"))
    integrity_full = _integrity(db)
    outcome.expect_equal("integrity_check when full", integrity_full, "ok")
    outcome.expect_equal(
        "tasks stored = enqueues that returned",
        counts.get("default", {}).get("pending", 0),
        len(stored),
    )

    # read-only: the client and a worker process both get a clear error
    _remount(point, "ro")
    ro_error = ""
    try:
        async with t.app() as app:
            await app.enqueue("reliability.tasks:checksum", args=(b"x",))
    except Exception as exc:
        ro_error = f"{type(exc).__name__}: {exc}"
    _clear(
        outcome,
        "read-only enqueue",
        ro_error,
        db,
        ("read-only", "readonly", "read only", "not writable"),
    )
    done = await asyncio.to_thread(
        subprocess.run, t.worker_command(), cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    _clear(
        outcome,
        "read-only worker",
        f"exit {done.returncode}: {done.stderr.strip()}",
        db,
        ("read-only", "readonly", "read only", "not writable"),
    )
    outcome.check(
        "read-only worker: exit 1 without a traceback",
        done.returncode == 1 and "Traceback" not in done.stderr,
        f"exit {done.returncode}",
    )
    _remount(point, "rw,size=64m")
    outcome.expect_equal("integrity_check after read-only", _integrity(db), "ok")

    # room again: every stored task runs
    worker = WorkerProcess(t.worker_command("--concurrency", "20"), Path(tempfile.mkdtemp()))
    try:
        async with t.app() as app:
            deadline = time.monotonic() + 120
            succeeded = 0
            while time.monotonic() < deadline:
                succeeded = (await app.task_queue.stats()).get("default", {}).get("success", 0)
                if succeeded >= len(stored):
                    break
                await worker_alive_or_fail(worker)
                await asyncio.sleep(0.2)
            missing = [
                tid
                for tid in stored
                if (task := await app.get_task(tid)) is None
                or task.status is not TaskStatus.SUCCESS
            ]
    finally:
        code = worker.stop(30)
    outcome.figures["tasks run once the disk had room"] = f"{succeeded}/{len(stored)}"
    outcome.expect_equal("stored tasks lost or not run", len(missing), 0)
    outcome.expect_equal("worker exit on SIGTERM", code, 0)
    outcome.headline = (
        f"full after {len(stored)} tasks: {full_error.split(':')[0]}; read-only: "
        f"{ro_error.split(':')[0]} / worker exit {done.returncode}; integrity "
        f"{integrity_full}; {succeeded}/{len(stored)} ran afterwards"
    )


async def worker_alive_or_fail(worker: WorkerProcess) -> None:
    if not worker.alive:
        raise RuntimeError(f"the worker exited: {worker.output()[-500:]}")
