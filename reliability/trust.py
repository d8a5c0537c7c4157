"""Scenario (h): the trust boundary, attacked by real processes writing to the real store.

Three attacks, each by a separate attacker process (``python -m reliability.trust <attack>``)
that writes to the store directly, never through the application, while real worker processes
(``omniq worker --include reliability.tasks``) serve it:

1. **Functions nobody allowed.** Tasks naming ``os:system``, ``subprocess:call``,
   ``builtins:exec`` and ``builtins:eval``, and a one-shot schedule naming ``os:system``, each
   told to create a marker file. The worker must refuse each before import (DEAD,
   ``FunctionNotAllowed``), and still run the canary tasks of ``reliability.tasks``.
2. **A signed payload copied into another task** (``OMNIQ_SECRET_KEY`` set everywhere): task A
   runs once; the attacker copies A's payload into the record of a task B parked on a queue
   nobody serves yet; then B's queue is served. B must go DEAD ("belongs to task"), and A's
   function must have run exactly once.
3. **A crafted pickle** that creates a marker file when loaded, written into a task's payload
   and into a stored result read by a client's ``get_task_result`` (every backend: SQLite signs
   with its own key, network backends refuse unsigned dill). Nothing may load it.

Pass criteria: markers created = 0; refused tasks DEAD with the reason naming the problem;
canaries succeeded = all; copy executions = 0 (A ran once); workers exit 0 on SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from omniq import AsyncOmniQ, TaskStatus
from omniq._time import utcnow
from omniq.backend import create_backend
from omniq.models.schedule import Schedule
from omniq.models.task import Task
from reliability.bad_input import _rewrite_payload, _until_final
from reliability.harness import ROOT, Outcome, Target, WorkerProcess, records_dir, target
from reliability.tasks import read_records

SECRET = "reliability-trust-key"
CANARIES = 10
FORBIDDEN = ("os:system", "subprocess:call", "builtins:exec", "builtins:eval")


async def run(backend: str) -> Outcome:
    outcome = Outcome("h-trust", backend)
    started = time.monotonic()
    async with target(backend) as t:
        marks = t.workdir / "marks"
        marks.mkdir()
        await _functions(t, outcome, marks)
        await _copied_payload(t, outcome)
        await _pickles(t, outcome, marks)
        created = sorted(p.name for p in marks.iterdir())
        outcome.expect_equal("marker files created by any attack", created, [])
    outcome.seconds = time.monotonic() - started
    outcome.headline = (
        f"markers {outcome.figures.get('markers', 0)}; refused "
        f"{outcome.figures.get('refused functions', '?')}; copy executions "
        f"{outcome.figures.get('copy executions', '?')}"
    )
    return outcome


# -- the attacker: a process of its own --------------------------------------------------------
def _attack(t: Target, name: str, **args: Any) -> None:
    """Runs one attack in a separate process, as someone with write access to the store."""
    spec = {"backend": t.backend, "url": t.url, "project": t.project, "schema": t.schema}
    done = subprocess.run(
        [sys.executable, "-m", "reliability.trust", name, json.dumps({**spec, **args})],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "OMNIQ_SECRET_KEY"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"attack {name} failed: {done.stderr[-2000:]}")


class _Marker:
    """A pickle that creates a file when it is loaded (``os.system`` would do worse)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.path}",))


def _crafted_pickle(path: str) -> bytes:
    return bytes((0x02,)) + pickle.dumps(_Marker(path))  # 0x02: the dill format, unsigned


async def _attacker(name: str, spec: dict[str, Any]) -> None:
    fake = Target(spec["backend"], spec["url"], spec["project"], Path("."), spec["schema"])
    if name == "functions":
        backend = create_backend(url=fake.url, project_name=fake.project)
        queue = backend.queue
        async with queue:
            marks = Path(spec["marks"])
            tasks = []
            for func in FORBIDDEN:
                mark = marks / func.replace(":", "-")
                command = f"open({str(mark)!r}, 'w').close()"
                arg: Any = {
                    "os:system": f"touch {mark}",
                    "subprocess:call": ["touch", str(mark)],
                }.get(func, command)
                tasks.append(Task(func=func, args=(arg,), id=f"attack-{func}", max_retries=3))
            await queue.enqueue_many(tasks)
            when = utcnow() + timedelta(seconds=1)
            schedule = Schedule(
                func="os:system",
                args=(f"touch {marks / 'schedule'}",),
                run_at=when,
                next_run_at=when,
                id="attack-schedule",
            )
            await queue.save_schedule(schedule)
    elif name == "copy":
        copied: list[bytes] = []
        await _rewrite_payload(fake, spec["source"], lambda p: copied.append(p) or p)
        await _rewrite_payload(fake, spec["victim"], lambda _: copied[0])
    elif name == "pickle-task":
        await _rewrite_payload(fake, spec["victim"], lambda _: _crafted_pickle(spec["mark"]))
    elif name == "pickle-result":
        await _rewrite_result(fake, spec["victim"], _crafted_pickle(spec["mark"]))
    else:
        raise ValueError(f"unknown attack {name!r}")


async def _rewrite_result(t: Target, task_id: str, data: bytes) -> None:
    """Replaces one stored result's payload directly in the backend."""
    if t.backend == "sqlite":
        import sqlite3

        with sqlite3.connect(t.url.removeprefix("sqlite:///")) as conn:
            changed = conn.execute(
                "UPDATE omniq_results SET payload = ? WHERE project = ? AND task_id = ?",
                (data, t.project, task_id),
            ).rowcount
        conn.close()
    elif t.backend == "postgres":
        import asyncpg  # type: ignore[import-untyped]

        from reliability.harness import service_port

        pg = await asyncpg.connect(
            host="127.0.0.1", port=service_port("postgres"), user="postgres", database="test"
        )
        try:
            done = await pg.execute(
                f'UPDATE "{t.schema}".results SET payload = $1 WHERE project = $2 AND task_id = $3',
                data,
                t.project,
                task_id,
            )
            changed = int(done.split()[-1])
        finally:
            await pg.close()
    else:
        import redis.asyncio as aioredis

        from reliability.harness import service_port

        client = aioredis.Redis(host="127.0.0.1", port=service_port("redis"))
        try:
            key = f"omniq:results:{{{t.project}}}:result:{task_id}"
            changed = int(await client.set(key, data, xx=True, keepttl=True) or 0)
        finally:
            await client.aclose()
    if changed != 1:
        raise RuntimeError(f"no stored result of task {task_id!r} to replace")


# -- 1. functions nobody allowed ---------------------------------------------------------------
async def _functions(t: Target, outcome: Outcome, marks: Path) -> None:
    out = records_dir(t, "canaries")
    _attack(t, "functions", marks=str(marks))
    async with t.app() as app:
        canaries = await app.enqueue_many(
            [{"func": "reliability.tasks:record_sync", "args": (i, out)} for i in range(CANARIES)]
        )
        worker = WorkerProcess(t.worker_command("--concurrency", "4"), t.workdir / "logs")
        try:
            refused = [await _until_final(app, f"attack-{f}", 60) for f in FORBIDDEN]
            occurrence = await _occurrence(app, "attack-schedule", 60)
            results = [await app.get_task_result(c, timeout=60) for c in canaries]
        finally:
            code = worker.stop(30)
    refused.append(occurrence)
    good = [
        t
        for t in refused
        if t is not None
        and t.status is TaskStatus.DEAD
        and t.error_type == "FunctionNotAllowed"
        and "allow_any_function" in (t.error_message or "")
    ]
    outcome.figures["refused functions"] = f"{len(good)}/{len(refused)}"
    outcome.figures["refusal"] = (refused[0].error_message or "")[:160] if refused[0] else None
    outcome.expect_equal(
        "forbidden tasks (incl. the schedule's) DEAD as FunctionNotAllowed",
        len(good),
        len(refused),
    )
    ok = sum(1 for i, r in enumerate(results) if r is not None and r.result == i)
    outcome.expect_equal("canaries succeeded beside the forbidden functions", ok, CANARIES)
    outcome.expect_equal("worker exit on SIGTERM (functions)", code, 0)


async def _occurrence(app: AsyncOmniQ, schedule_id: str, timeout: float) -> Task | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [t for t in await app.list_tasks(limit=1000) if t.schedule_id == schedule_id]
        if found and found[0].is_final:
            return found[0]
        await asyncio.sleep(0.1)
    return None


# -- 2. a signed payload copied into another task -----------------------------------------------
async def _copied_payload(t: Target, outcome: Outcome) -> None:
    out = records_dir(t, "copies")
    env = {"OMNIQ_SECRET_KEY": SECRET}
    async with t.app(secret_key=SECRET) as app:
        source = await app.enqueue("reliability.tasks:record_sync", args=(1, out))
        victim = await app.enqueue(
            "reliability.tasks:record_sync", args=(2, out), queue_name="parked"
        )
        first = WorkerProcess(t.worker_command("--queues", "default"), t.workdir / "logs", env)
        try:
            ran = await app.get_task_result(source, timeout=60)
        finally:
            code_first = first.stop(30)
        _attack(t, "copy", source=source, victim=victim)
        second = WorkerProcess(t.worker_command("--queues", "parked"), t.workdir / "logs", env)
        try:
            copied = await _until_final(app, victim, 60)
        finally:
            code_second = second.stop(30)
    executions = [key for key, _ in read_records(out)]
    outcome.figures["copy executions"] = executions.count("1") - 1
    outcome.figures["copied payload"] = (
        f"{copied.status.value}: {copied.error_message}"[:160] if copied else None
    )
    outcome.check("the original ran", ran is not None and ran.result == 1, repr(ran and ran.result))
    outcome.expect_equal("the copied payload's status", copied and copied.status, TaskStatus.DEAD)
    outcome.check(
        "the reason says the payload belongs to another task",
        copied is not None and "belongs to task" in (copied.error_message or ""),
        copied.error_message if copied else "missing",
    )
    outcome.expect_equal("executions of the original's function", sorted(executions), ["1"])
    outcome.expect_equal("worker exits on SIGTERM (copy)", (code_first, code_second), (0, 0))


# -- 3. crafted pickles -------------------------------------------------------------------------
async def _pickles(t: Target, outcome: Outcome, marks: Path) -> None:
    out = records_dir(t, "pickles")
    async with t.app() as app:
        victim = await app.enqueue(
            "reliability.tasks:record_sync", args=(3, out), queue_name="pickled"
        )
        _attack(t, "pickle-task", victim=victim, mark=str(marks / "task-pickle"))
        worker = WorkerProcess(t.worker_command("--queues", "pickled"), t.workdir / "logs")
        try:
            loaded = await _until_final(app, victim, 60)
            result_id = await app.enqueue(
                "reliability.tasks:record_sync", args=(4, out), queue_name="pickled"
            )
            await app.get_task_result(result_id, timeout=60)
        finally:
            code = worker.stop(30)
        outcome.expect_equal("pickled task's status", loaded and loaded.status, TaskStatus.DEAD)
        outcome.check(
            "the reason says the pickle was refused",
            loaded is not None and "dill payload refused" in (loaded.error_message or ""),
            loaded.error_message if loaded else "missing",
        )
        _attack(t, "pickle-result", victim=result_id, mark=str(marks / "result-pickle"))
        async with t.app() as client:
            try:
                await client.get_task_result(result_id)
                error = "no error"
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
        outcome.figures["pickled result"] = error[:160]
        outcome.check(
            "a client reading the pickled result is refused",
            "dill payload refused" in error,
            error[:160],
        )
    outcome.figures["markers"] = len(os.listdir(marks))
    outcome.expect_equal("worker exit on SIGTERM (pickles)", code, 0)


if __name__ == "__main__":
    asyncio.run(_attacker(sys.argv[1], json.loads(sys.argv[2])))
