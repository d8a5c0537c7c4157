"""Scenario (e): bad input, refused clearly, with stored data left intact.

Three parts, on one backend:

1. Refused at enqueue/config time: an unknown function path, an unserializable argument, a
   negative TTL, an invalid cron expression, queue names carrying SQL, Redis-key and
   path-traversal text (to ``enqueue`` and to ``omniq worker --queues``). Each must raise an
   error whose message names the offending value, and store nothing.
2. A 50 MB argument: either it round-trips (the worker returns its checksum) or it is refused
   with an error naming its size; either way the other tasks are untouched.
3. Damage in storage, behind OmniQ's back: one task's payload overwritten with garbage, and (with
   a SECRET_KEY) one signed payload tampered with so it still decodes but says something else.
   A worker process must mark each DEAD with a reason naming the problem, never run the
   tampered version, stay alive, and run every other ("canary") task.

Pass criteria: errors naming their value = all of them; tasks stored by refused calls = 0; bad
stored payloads DEAD = 2 with a clear reason; tampered executions = 0; canaries succeeded = all;
worker exits 0 on SIGTERM.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from omniq import AsyncOmniQ, TaskStatus
from reliability.harness import ROOT, Outcome, Target, WorkerProcess, records_dir, target
from reliability.tasks import checksum, read_records

SECRET = "reliability-secret-key"
TAMPER_FROM, TAMPER_TO = b"AMOUNT=0000100", b"AMOUNT=9999999"
CANARIES = 20

SQL_NAME = "x'; DROP TABLE omniq_tasks; --"
REDIS_NAME = "q}:*{other"
PATH_NAME = "../../etc/passwd"


async def run(backend: str, *, big_mb: int = 50) -> Outcome:
    outcome = Outcome("e-bad-input", backend)
    started = time.monotonic()
    async with target(backend) as t:
        await _run(t, outcome, big_mb)
    outcome.seconds = time.monotonic() - started
    return outcome


async def _refused(
    outcome: Outcome,
    app: AsyncOmniQ,
    label: str,
    call: Callable[[], Awaitable[Any]],
    names: str,
    error: type[BaseException] | tuple[type[BaseException], ...],
) -> None:
    """``call`` must raise ``error`` with ``names`` in its message, and store nothing."""
    before = await app.task_queue.stats()
    try:
        await call()
    except error as exc:
        message = f"{type(exc).__name__}: {exc}"
        outcome.check(f"{label}: error names {names!r}", names in str(exc), message[:200])
    except Exception as exc:
        outcome.check(f"{label}: raises {error}", False, f"{type(exc).__name__}: {exc}"[:200])
    else:
        outcome.check(f"{label}: refused", False, "accepted")
    after = await app.task_queue.stats()
    outcome.check(f"{label}: nothing stored", before == after, f"{before} -> {after}")


async def _refusals(t: Target, app: AsyncOmniQ, outcome: Outcome, out: str) -> None:
    from omniq.exceptions import FunctionNotFound, QueueNameError, SerializationError

    await _refused(
        outcome,
        app,
        "unknown module",
        lambda: app.enqueue("reliability.no_such_module:run"),
        "reliability.no_such_module",
        FunctionNotFound,
    )
    await _refused(
        outcome,
        app,
        "unknown function",
        lambda: app.enqueue("reliability.tasks:no_such_function"),
        "no_such_function",
        FunctionNotFound,
    )
    await _refused(
        outcome,
        app,
        "unserializable argument",
        lambda: app.enqueue("reliability.tasks:echo", args=(threading.Lock(), out)),
        "args[0]",
        SerializationError,
    )
    await _refused(
        outcome,
        app,
        "negative TTL",
        lambda: app.enqueue("reliability.tasks:echo", args=("x", out), ttl=-5),
        "-5",
        ValueError,
    )
    await _refused(
        outcome,
        app,
        "invalid cron",
        lambda: app.schedule("reliability.tasks:echo", cron="61 * * * *", args=("x", out)),
        "61 * * * *",
        ValueError,
    )
    for name in (SQL_NAME, REDIS_NAME, PATH_NAME):
        await _refused(
            outcome,
            app,
            f"queue name {name!r}",
            lambda name=name: app.enqueue(  # type: ignore[misc]
                "reliability.tasks:echo", args=("x", out), queue_name=name
            ),
            name,
            QueueNameError,
        )
        # the same name given to a worker: exit status 2 and a message naming it
        cmd = t.worker_command("--queues", name)
        done = await asyncio.to_thread(
            subprocess.run, cmd, cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        outcome.check(
            f"omniq worker --queues {name!r}: exit 2 naming it",
            done.returncode == 2 and name in done.stderr,
            f"exit {done.returncode}: {done.stderr.strip()[:160]}",
        )


async def _rewrite_payload(t: Target, task_id: str, change: Callable[[bytes], bytes]) -> None:
    """Changes one stored payload directly in the backend, as a bug or an attacker would."""
    if t.backend == "sqlite":
        import sqlite3

        path = t.url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            (payload,) = conn.execute(
                "SELECT payload FROM omniq_tasks WHERE project = ? AND id = ?", (t.project, task_id)
            ).fetchone()
            conn.execute(
                "UPDATE omniq_tasks SET payload = ? WHERE project = ? AND id = ?",
                (change(bytes(payload)), t.project, task_id),
            )
        conn.close()
    elif t.backend == "postgres":
        import asyncpg  # type: ignore[import-untyped]

        from reliability.harness import service_port

        conn = await asyncpg.connect(
            host="127.0.0.1", port=service_port("postgres"), user="postgres", database="test"
        )
        try:
            table = f'"{t.schema}".tasks'
            payload = await conn.fetchval(
                f"SELECT payload FROM {table} WHERE project = $1 AND id = $2", t.project, task_id
            )
            await conn.execute(
                f"UPDATE {table} SET payload = $1 WHERE project = $2 AND id = $3",
                change(bytes(payload)),
                t.project,
                task_id,
            )
        finally:
            await conn.close()
    elif t.backend == "redis":
        import redis.asyncio as aioredis

        from reliability.harness import service_port

        client = aioredis.Redis(host="127.0.0.1", port=service_port("redis"))
        try:
            key = f"omniq:tasks:{{{t.project}}}:task:{task_id}"
            payload = await client.hget(key, "p")  # type: ignore[misc]
            assert payload is not None, f"no payload at {key}"
            raw = payload if isinstance(payload, bytes) else payload.encode()
            await client.hset(key, "p", change(raw))  # type: ignore[misc, arg-type]
        finally:
            await client.aclose()
    else:
        raise ValueError(f"cannot reach the storage of {t.backend!r}")


def _tamper(payload: bytes) -> bytes:
    assert TAMPER_FROM in payload, "the argument is not stored verbatim: cannot tamper with it"
    return payload.replace(TAMPER_FROM, TAMPER_TO)


async def _damaged_storage(
    t: Target, outcome: Outcome, out: str, *, signed: bool, big_mb: int
) -> None:
    """Part 2 and 3 on one target: a worker process meets what was damaged in storage."""
    options: dict[str, Any] = {"secret_key": SECRET} if signed else {}
    env = {"OMNIQ_SECRET_KEY": SECRET} if signed else {}
    kind = "tampered signed payload" if signed else "corrupted payload"
    async with t.app(**options) as app:
        if not signed:
            await _refusals(t, app, outcome, out)
        canaries = await app.enqueue_many(
            [{"func": "reliability.tasks:record_sync", "args": (i, out)} for i in range(CANARIES)]
        )
        if signed:
            victim = await app.enqueue(
                "reliability.tasks:echo", args=(TAMPER_FROM.decode(), out), max_retries=0
            )
            await _rewrite_payload(t, victim, _tamper)
        else:
            victim = await app.enqueue("reliability.tasks:echo", args=("garbage", out))
            await _rewrite_payload(t, victim, lambda _: b"\x00\xffnot an envelope\x13\x37")
        big_id: str | None = None
        big_error = ""
        blob = b""
        if big_mb and not signed:
            blob = bytes(range(256)) * (big_mb * 4096)
            began = time.monotonic()
            try:
                big_id = await app.enqueue("reliability.tasks:checksum", args=(blob,))
            except Exception as exc:
                big_error = f"{type(exc).__name__}: {exc}"[:200]
            outcome.figures[f"{big_mb}MB_enqueue_s"] = round(time.monotonic() - began, 2)

        worker = WorkerProcess(t.worker_command("--concurrency", "4"), t.workdir / "logs", env)
        try:
            began = time.monotonic()
            results = {tid: await app.get_task_result(tid, timeout=120) for tid in canaries}
            bad = await _until_final(app, victim, 60)
            big_value = None
            if big_id is not None:
                big_result = await app.get_task_result(big_id, timeout=180)
                big_value = big_result.result if big_result else None
                outcome.figures[f"{big_mb}MB_round_trip_s"] = round(time.monotonic() - began, 2)
            alive = worker.alive
        finally:
            code = worker.stop(30)

    ok = sum(1 for i, tid in enumerate(canaries) if (r := results.get(tid)) and r.result == i)
    reason = f"{bad.error_type}: {bad.error_message}" if bad else "task missing"
    outcome.figures[f"{kind}: status"] = bad.status.value if bad else None
    outcome.figures[f"{kind}: reason"] = reason[:160]
    outcome.expect_equal(f"{kind}: status", bad.status if bad else None, TaskStatus.DEAD)
    words = (
        ("signature", "sign", "tamper") if signed else ("payload", "decode", "corrupt", "envelope")
    )
    outcome.check(
        f"{kind}: the reason says what is wrong",
        bad is not None
        and bad.error_type == "SerializationError"
        and any(w in (bad.error_message or "").lower() for w in words),
        reason[:160],
    )
    if signed:
        ran = [k for k, _ in read_records(out) if k.startswith("echo:")]
        outcome.expect_equal("tampered executions", ran, [])
    outcome.expect_equal(f"canaries succeeded beside the {kind}", ok, CANARIES)
    outcome.check(f"worker alive after the {kind}", alive, f"exit {worker.process.returncode}")
    outcome.expect_equal(f"worker exit on SIGTERM after the {kind}", code, 0)
    if big_mb and not signed:
        outcome.figures[f"{big_mb}MB payload"] = (
            f"refused: {big_error}" if big_error else f"returned {big_value!r}"
        )
        outcome.check(
            f"{big_mb} MB payload: round-trips, or is refused naming its size",
            (big_id is not None and big_value == checksum(blob))
            or (bool(big_error) and ("MB" in big_error or "bytes" in big_error)),
            big_error or f"checksum {big_value!r} (want {checksum(blob)})",
        )


async def _until_final(app: AsyncOmniQ, task_id: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    task = await app.get_task(task_id)
    while time.monotonic() < deadline:
        task = await app.get_task(task_id)
        if task is not None and task.status.is_final:
            break
        await asyncio.sleep(0.1)
    return task


async def _run(t: Target, outcome: Outcome, big_mb: int) -> None:
    out = records_dir(t)
    await _damaged_storage(t, outcome, out, signed=False, big_mb=big_mb)
    await _damaged_storage(t, outcome, out, signed=True, big_mb=0)
    refused = [c for c in outcome.checks if "error names" in c.name or "exit 2" in c.name]
    outcome.headline = (
        f"{sum(c.passed for c in refused)}/{len(refused)} refusals name their value; "
        f"corrupted and tampered payloads: "
        f"{outcome.figures.get('corrupted payload: status')}/"
        f"{outcome.figures.get('tampered signed payload: status')}"
    )


if __name__ == "__main__":  # pragma: no cover - a quick look at one backend
    print(asyncio.run(run(sys.argv[1] if len(sys.argv) > 1 else "sqlite")).render())
