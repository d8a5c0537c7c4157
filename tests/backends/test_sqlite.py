"""SQLite-specific behaviour beyond the conformance suite: several processes on one file, bad
paths, where the file goes, migrations, wake-ups between processes, indexes, and the seeds'
SQLite examples as written."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
import socket
import sqlite3
import stat
import tempfile
from collections import Counter
from collections.abc import Iterator
from multiprocessing.synchronize import Event as MPEvent
from pathlib import Path
from typing import Any

import pytest

from omniq._time import utcnow
from omniq.exceptions import BackendUnavailable, ConfigError
from omniq.models.result import TaskResult
from omniq.models.task import Task, TaskStatus
from omniq.models.worker import WorkerInfo
from omniq.storage.base import Completion
from omniq.storage.sqlite import (
    AsyncSQLiteEventStorage,
    AsyncSQLiteQueue,
    AsyncSQLiteResultStorage,
)
from omniq.storage.sqlite._schema import load_migrations
from omniq.storage.sqlite._wake import WakeHub, wake_folder

TASKS = 5_000
WORKER_PROCESSES = 4


# -- task functions (importable by name, so spawned workers find them) -------------------------
_LOG_FDS: dict[str, int] = {}


async def record_execution(index: int, out_dir: str) -> int:
    """Appends ``index`` to this process's log: one line per execution, never lost or merged."""
    path = os.path.join(out_dir, f"{os.getpid()}.log")
    fd = _LOG_FDS.get(path)
    if fd is None:
        fd = _LOG_FDS[path] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(fd, f"{index}\n".encode())
    return index


def greet(name: str) -> str:
    return name


# -- several worker processes on one file ------------------------------------------------------
def _serve(db_path: str, ready: MPEvent, done: MPEvent) -> None:
    asyncio.run(_serve_async(db_path, ready, done))


async def _serve_async(db_path: str, ready: MPEvent, done: MPEvent) -> None:
    from omniq.workers import AsyncWorker

    queue = AsyncSQLiteQueue(path=db_path)
    # this module's functions: stored by the parent, so this process was told about them
    worker = AsyncWorker(queue, concurrency=50, idle_timeout=1.0, task_modules=[__name__])
    await worker.start()
    ready.set()
    await asyncio.to_thread(done.wait)  # serve until the parent says the run is over
    await worker.stop()
    await worker.result_store.close()
    await queue.close()


async def test_worker_processes_on_one_file_run_every_task_exactly_once(tmp_path: Path) -> None:
    db_path = str(tmp_path / "shared.db")
    out_dir = tmp_path / "executions"
    out_dir.mkdir()
    ctx = multiprocessing.get_context("spawn")
    ready = [ctx.Event() for _ in range(WORKER_PROCESSES)]
    done = ctx.Event()
    procs = [ctx.Process(target=_serve, args=(db_path, r, done)) for r in ready]
    for proc in procs:
        proc.start()
    try:
        for event in ready:
            assert await asyncio.to_thread(event.wait, 30), "a worker process did not start"
        async with (
            AsyncSQLiteQueue(path=db_path) as queue,
            AsyncSQLiteResultStorage(path=db_path) as results,
        ):
            ids: list[str] = []
            for start in range(0, TASKS, 500):  # several enqueues: several wake-ups
                ids += await queue.enqueue_many(
                    [
                        Task(func=f"{__name__}:record_execution", args=(i, str(out_dir)))
                        for i in range(start, start + 500)
                    ]
                )
            found = await asyncio.gather(*(results.wait(t, timeout=45) for t in ids))
            stats = await queue.stats()
    finally:
        done.set()
        for proc in procs:
            await asyncio.to_thread(proc.join, 30)
            if proc.is_alive():
                proc.kill()

    assert [r.result if r is not None else None for r in found] == list(range(TASKS))
    assert stats == {"default": {"success": TASKS}}
    executions = Counter(
        int(line) for log in out_dir.iterdir() for line in log.read_text().splitlines()
    )
    assert sorted(executions) == list(range(TASKS)), "some task never ran"
    assert [i for i, n in executions.items() if n > 1] == [], "some task ran twice"
    assert len(list(out_dir.iterdir())) >= 2, "the tasks were not shared between processes"
    assert all(proc.exitcode == 0 for proc in procs)


def _connect_fresh(db_path: str, barrier: Any) -> None:
    barrier.wait()

    async def connect() -> None:
        async with AsyncSQLiteQueue(path=db_path):
            pass

    asyncio.run(connect())


def test_processes_connecting_at_once_migrate_the_schema_once(tmp_path: Path) -> None:
    db_path = str(tmp_path / "fresh.db")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKER_PROCESSES)
    procs = [
        ctx.Process(target=_connect_fresh, args=(db_path, barrier)) for _ in range(WORKER_PROCESSES)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)

    assert [proc.exitcode for proc in procs] == [0] * WORKER_PROCESSES
    with sqlite3.connect(db_path) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM omniq_schema_version")]
    assert versions == [v for v, _, _ in load_migrations()]


async def test_switching_to_wal_waits_for_a_writer_instead_of_failing_at_once(
    tmp_path: Path,
) -> None:
    # A connection holding a shared lock that needs an exclusive one gets SQLITE_BUSY at once,
    # without the busy handler: what processes opening a fresh file together ran into.
    db_path = tmp_path / "fresh.db"
    writer = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE held (x)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO held VALUES (1)")
    loop = asyncio.get_running_loop()
    loop.call_later(0.3, writer.execute, "COMMIT")

    async with AsyncSQLiteQueue(path=str(db_path), busy_timeout=10) as queue:
        await queue.enqueue("operator:add", args=(1, 2))

    writer.close()
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_a_write_waits_for_another_connections_transaction_then_commits(
    tmp_path: Path,
) -> None:
    # the write lock is waited for in our own short pauses (SQLite's busy handler is off while
    # a write takes it); the wait must still last as long as the other transaction does
    db_path = tmp_path / "held.db"
    async with AsyncSQLiteQueue(path=str(db_path), busy_timeout=10) as queue:
        await queue.enqueue("operator:add", args=(0, 0))
        holder = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("UPDATE omniq_tasks SET priority = priority")
        asyncio.get_running_loop().call_later(0.3, holder.execute, "COMMIT")
        one = await queue.enqueue("operator:add", args=(1, 1))  # one autocommit statement
        two = await queue.enqueue_many(  # a transaction
            [Task(func="operator:add", args=(i, i)) for i in (2, 3)]
        )
        claimed = await queue.dequeue_many(limit=10)
        holder.close()
    assert {t.id for t in claimed} >= {one, *two}


async def test_a_write_held_off_past_busy_timeout_fails_naming_the_file(tmp_path: Path) -> None:
    db_path = tmp_path / "stuck.db"
    async with AsyncSQLiteQueue(path=str(db_path), busy_timeout=0.2) as queue:
        await queue.enqueue("operator:add", args=(0, 0))
        holder = sqlite3.connect(db_path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(BackendUnavailable, match=r"stuck\.db"):
                await queue.enqueue("operator:add", args=(1, 1))
            with pytest.raises(BackendUnavailable, match=r"stuck\.db"):
                await queue.dequeue_many(limit=1)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        # the connection's own busy handler is back for the statements that do not take the lock
        # this way
        assert (await queue.db.run(lambda raw: raw.execute("PRAGMA busy_timeout").fetchone()))[
            0
        ] == 200
        assert await queue.dequeue_many(limit=1)


async def test_the_wal_is_copied_into_the_database_beside_the_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # commits leave SQLite's own checkpoint far away; a connection of the database's own copies
    # the WAL into the file every so many changed rows (CHECKPOINT_CHANGES at first) instead
    from omniq.storage.sqlite import _db

    monkeypatch.setattr(_db, "CHECKPOINT_CHANGES", 10)
    monkeypatch.setattr(_db, "CHECKPOINT_PAGES", 1)  # every checkpoint finds more: never longer
    db_path = tmp_path / "ckpt.db"
    async with AsyncSQLiteQueue(path=str(db_path)) as queue:
        autocheckpoint = await queue.db.run(
            lambda raw: raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        )
        assert autocheckpoint == _db.AUTOCHECKPOINT_PAGES
        for batch in range(2):  # the first checkpoint may start before the first batch ends
            for i in range(12):
                await queue.enqueue("operator:add", args=(batch, i))
            checkpoint = queue.db._checkpointing
            if checkpoint is not None:  # else it is over already
                await checkpoint
        # the file itself, without its WAL (immutable: SQLite reads neither -wal nor -shm)
        main_file = sqlite3.connect(f"file:{db_path}?immutable=1", uri=True)
        try:
            stored = main_file.execute("SELECT COUNT(*) FROM omniq_tasks").fetchone()[0]
        finally:
            main_file.close()
    assert stored >= 12


def test_the_sync_enqueue_writes_in_the_callers_thread_and_wakes_a_worker_of_its_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the worker's safety re-check pushed far away: only the wake-up can bring it the tasks
    from omniq import OmniQ
    from omniq.backend import create_backend
    from omniq.storage.sqlite import queue as sqlite_queue

    monkeypatch.setattr(sqlite_queue, "SAFETY_RECHECK", 60.0)
    oq = OmniQ.from_backend(
        create_backend(url=f"sqlite:///{tmp_path / 'lane.db'}"),
        worker_config={"idle_timeout": 60.0},
    )
    try:
        oq.start_worker()
        # the first checks that the queue is served (the loop's way); each next one finds the
        # worker waiting
        for name in "abc":
            assert oq.get_result(oq.enqueue(greet, args=(name,)), timeout=20) == name
        db = oq.async_.task_queue.db
        assert db._lane_connections  # the caller's thread had a connection of its own
    finally:
        oq.stop_worker()
        oq.close()


# -- where the file goes -----------------------------------------------------------------------
async def test_base_dir_names_a_folder_created_on_connect_holding_project_db(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "not" / "there" / "yet"

    async with AsyncSQLiteQueue(project_name="my_project", base_dir=str(folder)) as queue:
        await queue.enqueue("operator:add", args=(1, 2))

    assert (folder / "my_project.db").is_file()


@pytest.mark.parametrize("form", ["path", "url"])
async def test_absolute_path_and_url_name_the_same_file(tmp_path: Path, form: str) -> None:
    target = tmp_path / "named.db"
    where = {"path": str(target)} if form == "path" else {"url": f"sqlite:///{target}"}

    async with AsyncSQLiteQueue(**where) as queue:
        assert queue.path == target
        await queue.enqueue("operator:add", args=(1, 2))

    assert target.is_file()


def test_relative_url_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    assert AsyncSQLiteQueue(path="sqlite:///sub/rel.db").path == tmp_path / "sub" / "rel.db"


@pytest.mark.parametrize("target", [":memory:", "sqlite:///:memory:"])
def test_in_memory_database_is_refused_pointing_at_the_memory_backend(target: str) -> None:
    with pytest.raises(ConfigError, match="memory backend"):
        AsyncSQLiteQueue(path=target)


def test_url_with_a_host_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError, match="dbhost"):
        AsyncSQLiteQueue(url="sqlite://dbhost/x.db")


async def test_tasks_survive_closing_and_reopening_the_file(tmp_path: Path) -> None:
    path = str(tmp_path / "durable.db")
    async with AsyncSQLiteQueue(path=path) as queue:
        task_id = await queue.enqueue("operator:add", args=(1, 2), priority=3)

    async with AsyncSQLiteQueue(path=path) as queue:
        task = await queue.dequeue()

    assert task is not None
    assert (task.id, task.args, task.priority) == (task_id, (1, 2), 3)


async def test_projects_sharing_one_file_do_not_see_each_other(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    async with (
        AsyncSQLiteQueue(path=path, project_name="alpha") as alpha,
        AsyncSQLiteQueue(path=path, project_name="beta") as beta,
    ):
        await alpha.enqueue("operator:add", args=(1, 2))

        assert await beta.dequeue() is None
        assert await beta.stats() == {}
        assert await alpha.get_queue_size() == 1


# -- bad paths fail at connect with a clear error naming the path ------------------------------
async def test_folder_that_cannot_be_created_raises_config_error_naming_it(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    queue = AsyncSQLiteQueue(base_dir=str(blocker / "sub"))

    with pytest.raises(ConfigError) as raised:
        await queue.connect()

    assert str(blocker / "sub") in str(raised.value)


async def test_path_that_is_a_directory_raises_config_error_naming_it(tmp_path: Path) -> None:
    queue = AsyncSQLiteQueue(path=str(tmp_path))

    with pytest.raises(ConfigError) as raised:
        await queue.connect()

    assert str(tmp_path) in str(raised.value)
    assert "directory" in str(raised.value)


async def test_file_that_is_not_a_database_raises_backend_unavailable_naming_it(
    tmp_path: Path,
) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not an SQLite file at all" * 100)

    with pytest.raises(BackendUnavailable) as raised:
        async with AsyncSQLiteResultStorage(path=str(garbage)):
            pass

    assert str(garbage) in str(raised.value)


def _connect_unprivileged(db_path: str, report: Any) -> None:
    """Runs in a forked child: drops root (which ignores file modes), then connects."""
    if os.geteuid() == 0:
        os.setgid(65534)
        os.setuid(65534)

    async def connect() -> None:
        async with AsyncSQLiteQueue(path=db_path):
            pass

    try:
        asyncio.run(connect())
    except Exception as exc:
        report.put((type(exc).__name__, str(exc)))
    else:
        report.put(("no error", ""))


@pytest.fixture
def read_only_db() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="omniq-ro-"))
    os.chmod(folder, 0o777)  # only the file is read-only; an unprivileged child may write here
    path = folder / "read-only.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE placeholder (x)")
    conn.close()
    os.chmod(path, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    yield path
    os.chmod(path, 0o644)
    for child in folder.iterdir():
        child.unlink()
    folder.rmdir()


def test_read_only_file_raises_backend_unavailable_naming_it(read_only_db: Path) -> None:
    ctx = multiprocessing.get_context("fork")  # the child keeps the loaded modules after setuid
    report = ctx.Queue()
    child = ctx.Process(target=_connect_unprivileged, args=(str(read_only_db), report))
    child.start()
    error_type, message = report.get(timeout=30)
    child.join(10)

    assert error_type == "BackendUnavailable"
    assert str(read_only_db) in message
    assert "read-only" in message


# -- results share the queue's file and transaction --------------------------------------------
async def test_results_in_the_same_file_are_written_with_the_acknowledgement(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "together.db")
    async with (
        AsyncSQLiteQueue(path=path) as queue,
        AsyncSQLiteResultStorage(path=path) as results,
        AsyncSQLiteResultStorage(path=str(tmp_path / "elsewhere.db")) as elsewhere,
    ):
        assert queue.stores_results_with(results) is True
        assert queue.stores_results_with(elsewhere) is False
        assert queue.stores_results_with(queue.create_result_storage()) is True
        await queue.enqueue("operator:add", args=(1, 2))
        task = await queue.dequeue(lease=5)
        assert task is not None
        assert task.claim is not None

        await queue.complete(
            task.id, task.claim, TaskResult(task_id=task.id, result=3), result_storage=results
        )

        stored = await results.get(task.id)
        assert stored is not None
        assert stored.result == 3
        finished = await queue.get_task(task.id)
        assert finished is not None
        assert finished.status is TaskStatus.SUCCESS


async def test_results_signed_with_another_key_are_written_in_the_completion_and_readable(
    tmp_path: Path,
) -> None:
    """The queue writes results with the result storage's own serializer, so a different
    signing key does not stop them sharing the completion transaction."""
    path = str(tmp_path / "keys.db")
    async with (
        AsyncSQLiteQueue(path=path, secret_key="one") as queue,
        AsyncSQLiteResultStorage(path=path, secret_key="two") as results,
    ):
        assert queue.stores_results_with(results) is True
        await queue.enqueue("operator:add", args=(1, 2))
        task = await queue.dequeue(lease=5)
        assert task is not None
        assert task.claim is not None
        done = TaskResult(task_id=task.id, result={"sum": 3})

        assert await queue.complete(task.id, task.claim, done, result_storage=results)

        stored = await results.get(task.id)
        assert stored is not None
        assert stored.result == {"sum": 3}


# -- wake-ups between processes (two hubs stand for two processes) -----------------------------
async def test_a_task_notification_reaches_a_waiter_of_another_process(tmp_path: Path) -> None:
    waiter, notifier = (
        WakeHub(tmp_path / "w.db", _no_results),
        WakeHub(tmp_path / "w.db", _no_results),
    )
    try:
        waiter.listen()
        since = waiter.task_gen
        waiting = asyncio.create_task(waiter.wait_tasks(["default"], 30, None, since))
        await asyncio.sleep(0.05)

        notifier.notify_tasks(["default"])

        await asyncio.wait_for(waiting, 10)
        assert waiter.task_gen == since + 1
    finally:
        waiter.close()
        notifier.close()


async def test_a_result_notification_reaches_only_its_waiter(tmp_path: Path) -> None:
    waiter, notifier = (
        WakeHub(tmp_path / "w.db", _no_results),
        WakeHub(tmp_path / "w.db", _no_results),
    )
    try:
        waiter.listen()
        mine = asyncio.create_task(waiter.wait_result("p", "mine", 30))
        other = asyncio.create_task(waiter.wait_result("p", "other", 30))
        await asyncio.sleep(0.05)

        notifier.notify_results("p", [("mine", b"payload")])

        await asyncio.wait_for(mine, 10)
        assert not other.done()
        other.cancel()
    finally:
        waiter.close()
        notifier.close()


async def test_a_dead_process_socket_is_removed_by_the_next_notification(tmp_path: Path) -> None:
    folder = wake_folder(tmp_path / "w.db")
    folder.mkdir(parents=True)
    stale = folder / "999999-deadbeef.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(stale))
    sock.close()  # its owner is gone, the file stays behind
    notifier = WakeHub(tmp_path / "w.db", _no_results)
    try:
        notifier.notify_tasks(["default"])
    finally:
        notifier.close()

    assert not stale.exists()


def test_wake_folder_moves_to_the_temp_dir_when_socket_paths_would_be_too_long(
    tmp_path: Path,
) -> None:
    deep = tmp_path / ("x" * 120) / "db.sqlite"

    folder = wake_folder(deep)

    assert len(os.fsencode(folder)) + 24 <= 100
    assert folder == wake_folder(deep)  # every process derives the same folder


async def _no_results(project: str, task_ids: list[str]) -> set[str]:
    return set()


# -- dependencies and the worker registry ------------------------------------------------------
def _dep_rows(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        return sorted(conn.execute("SELECT dep_id, task_id FROM omniq_task_deps"))


async def test_a_version_1_database_is_upgraded_keeping_its_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from omniq.storage.sqlite import _schema

    path = tmp_path / "old.db"
    first = load_migrations()[:1]
    monkeypatch.setattr(_schema, "load_migrations", lambda: first)
    async with AsyncSQLiteQueue(path=str(path)) as queue:
        old = await queue.enqueue("operator:add", args=(1, 2))
    with sqlite3.connect(path) as conn:
        assert [r[0] for r in conn.execute("SELECT version FROM omniq_schema_version")] == [1]
    monkeypatch.undo()

    async with AsyncSQLiteQueue(path=str(path)) as queue:
        child = await queue.enqueue("operator:add", args=(3, 4), depends_on=[old])
        task = await queue.dequeue(lease=5)
        assert task is not None
        assert task.id == old
        assert task.claim is not None
        assert await queue.complete(task.id, task.claim)
        promoted = await queue.get_task(child)

    assert promoted is not None
    assert promoted.status is TaskStatus.PENDING
    with sqlite3.connect(path) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM omniq_schema_version")]
    assert versions == [v for v, _, _ in load_migrations()]


async def test_the_dependency_index_holds_rows_only_while_the_dependent_waits(
    tmp_path: Path,
) -> None:
    path = tmp_path / "deps.db"
    async with AsyncSQLiteQueue(path=str(path)) as queue:
        parent = await queue.enqueue("operator:add", args=(1, 2))
        other = await queue.enqueue("operator:add", args=(1, 2), queue_name="other")
        child = await queue.enqueue("operator:add", depends_on=[parent, other])
        lone = await queue.enqueue("operator:add", depends_on=[other], queue_name="other")
        assert _dep_rows(path) == sorted([(parent, child), (other, child), (other, lone)])

        task = await queue.dequeue(["default"], lease=5)
        assert task is not None
        assert task.claim is not None
        assert await queue.complete(task.id, task.claim)
        # the child still waits for `other`: its rows stay
        assert _dep_rows(path) == sorted([(parent, child), (other, child), (other, lone)])

        assert await queue.cancel(child)  # a waiting task cancelled by hand
        assert _dep_rows(path) == [(other, lone)]
        assert await queue.purge("other") == 2  # `other` (pending) and `lone` (waiting)
        assert _dep_rows(path) == []


async def test_a_duplicate_enqueue_of_a_dependent_adds_no_index_rows(tmp_path: Path) -> None:
    path = tmp_path / "dup.db"
    async with AsyncSQLiteQueue(path=str(path)) as queue:
        a = await queue.enqueue("operator:add", args=(1, 2))
        b = await queue.enqueue("operator:add", args=(1, 2))
        await queue.enqueue("operator:add", depends_on=[a], task_id="child")
        # same id, other dependencies: the task stored first stands, and so do its rows
        await queue.enqueue_many([Task(func="operator:add", id="child", depends_on=(b,))])

        assert _dep_rows(path) == [(a, "child")]


async def test_an_acknowledgement_nobody_waits_on_costs_no_extra_round_trip(
    tmp_path: Path,
) -> None:
    async with AsyncSQLiteQueue(path=str(tmp_path / "hops.db")) as queue:
        await queue.enqueue_many([Task(func="operator:add", args=(i, 1)) for i in range(3)])
        waited = await queue.enqueue("operator:add", args=(9, 9), queue_name="parent")
        await queue.enqueue("operator:add", depends_on=[waited])
        calls = 0
        real_run = queue.db.run

        async def counting(fn: Any) -> Any:
            nonlocal calls
            calls += 1
            return await real_run(fn)

        queue.db.run = counting  # type: ignore[method-assign]
        try:
            batch = await queue.dequeue_many(["default"], 3, lease=5)
            calls = 0
            assert all(await queue.complete_many([Completion(t.id, t.claim or "") for t in batch]))
            assert calls == 1  # the acknowledgement itself, nothing after it

            task = await queue.dequeue(["parent"], lease=5)
            assert task is not None
            assert task.claim is not None
            calls = 0
            assert await queue.complete(task.id, task.claim)
            assert calls > 1  # someone waits: the dependents are read and promoted
        finally:
            queue.db.run = real_run  # type: ignore[method-assign]


async def test_workers_of_two_projects_in_one_file_are_listed_apart_and_expired_rows_go(
    tmp_path: Path,
) -> None:
    path = tmp_path / "workers.db"

    def info(worker_id: str) -> WorkerInfo:
        return WorkerInfo(
            worker_id=worker_id,
            worker_type="process",
            hostname="h",
            pid=1,
            queues=["default"],
            concurrency=2,
            started_at=utcnow(),
        )

    async with (
        AsyncSQLiteQueue(path=str(path), project_name="alpha") as alpha,
        AsyncSQLiteQueue(path=str(path), project_name="beta") as beta,
    ):
        await alpha.register_worker(info("a-1"), ttl=30)
        await alpha.register_worker(info("a-gone"), ttl=0.05)
        await beta.register_worker(info("b-1"), ttl=30)
        await asyncio.sleep(0.1)

        assert [w.worker_id for w in await alpha.list_workers()] == ["a-1"]
        assert [w.worker_id for w in await beta.list_workers()] == ["b-1"]
        assert await beta.unregister_worker("a-1") is False  # another project's worker
    with sqlite3.connect(path) as conn:
        stored = sorted(r[0] for r in conn.execute("SELECT worker_id FROM omniq_workers"))
    assert stored == ["a-1", "b-1"]  # the expired record was deleted while listing


# -- the migrations produce the schema ----------------------------------------------------------
def _schema_of(conn: sqlite3.Connection) -> list[tuple[str, str, str, str]]:
    """Every table, index and trigger, its SQL without comments or layout."""
    rows = conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master"
        " WHERE sql IS NOT NULL AND name <> 'omniq_schema_version' ORDER BY type, name"
    ).fetchall()
    return [
        (kind, name, table, " ".join(re.sub(r"--[^\n]*", "", sql).split()))
        for kind, name, table, sql in rows
    ]


def test_the_migrations_produce_schema_sql(tmp_path: Path) -> None:
    from omniq.storage.sqlite._schema import FILES, migrate

    migrated = sqlite3.connect(tmp_path / "migrated.db", isolation_level=None)
    described = sqlite3.connect(tmp_path / "described.db", isolation_level=None)
    try:
        assert migrate(migrated, tmp_path / "migrated.db") == len(FILES.migrations)
        described.executescript(FILES.schema)
        assert _schema_of(migrated) == _schema_of(described)
        assert {name for kind, name, _, _ in _schema_of(described) if kind == "table"} >= {
            "omniq_tasks",
            "omniq_results",
            "omniq_events",
            "omniq_schedules",
            "omniq_task_deps",
            "omniq_workers",
        }
    finally:
        migrated.close()
        described.close()


async def test_a_database_at_version_2_with_tasks_gets_its_counts_on_upgrade(
    tmp_path: Path,
) -> None:
    """Migration 3 counts the tasks already stored; the triggers keep the counts from then on."""
    from omniq.storage.sqlite._schema import split_statements

    path = tmp_path / "old.db"
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        raw.execute(
            "CREATE TABLE omniq_schema_version ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        for version, name, script in load_migrations()[:2]:
            for statement in split_statements(script):
                raw.execute(statement)
            raw.execute("INSERT INTO omniq_schema_version VALUES (?, ?, 'then')", (version, name))
        for i, (queue, status) in enumerate([("a", "pending"), ("a", "pending"), ("b", "dead")]):
            raw.execute(
                "INSERT INTO omniq_tasks (project, id, queue, status, ready_at, created_at, func,"
                " payload) VALUES ('old', ?, ?, ?, 0, 0, 'operator:add', x'00')",
                (f"t{i}", queue, status),
            )
    finally:
        raw.close()

    async with AsyncSQLiteQueue(project_name="old", path=str(path)) as queue:
        assert await queue.stats() == {"a": {"pending": 2}, "b": {"dead": 1}}
        assert await queue.get_queue_size("a") == 2
        await queue.enqueue("operator:add", args=(1, 2), queue_name="a")
        assert await queue.purge_dead("b") == 1
        assert await queue.stats() == {"a": {"pending": 3}}


def test_every_statement_of_queries_sql_compiles_against_the_schema(tmp_path: Path) -> None:
    from omniq.storage.sqlite._listing import by_func_sql
    from omniq.storage.sqlite._rows import _LIST_SQL, SQL, _claim_sql, _due_sql
    from omniq.storage.sqlite._schema import migrate

    conn = sqlite3.connect(tmp_path / "compiled.db", isolation_level=None)
    try:
        migrate(conn, tmp_path / "compiled.db")
        filled = {
            name: sql.replace("{where}", "project = ?").replace("{order}", "ASC")
            for name, sql in SQL.items()
            if "{i}" not in sql
            and "{arms}" not in sql
            and "{names}" not in sql
            and "{groups}" not in sql
            and "{cmp}" not in sql
        }
        filled.update(claim_expire=_claim_sql(3)[0], claim=_claim_sql(3)[1], due=_due_sql(3))
        for desc, sql in _LIST_SQL.items():
            filled[f"list_tasks {desc=}"] = sql.replace("{groups}", "AND g.queue = ?")
        for name in ("func_range", "status_func_range"):
            for desc in (False, True):
                filled[f"{name} {desc=}"] = by_func_sql(name, desc, status=True)
        filled["func_range any status"] = by_func_sql("func_range", False)
        assert "{" not in "".join(filled.values())
        for name, sql in filled.items():
            named = set(re.findall(r"(?<!:):([a-z0-9_]+)", sql))
            params: Any = dict.fromkeys(named) if named else (None,) * sql.count("?")
            try:
                conn.execute(f"EXPLAIN {sql}", params)
            except sqlite3.Error as exc:  # a typo, a missing column, a bad join
                pytest.fail(f"query {name!r} does not compile: {exc}")
    finally:
        conn.close()


# -- indexes match the queries -----------------------------------------------------------------
def _plan(conn: sqlite3.Connection, sql: str, params: Any) -> str:
    return " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))


async def test_the_claim_walks_the_claim_index_of_each_queue_without_sorting_it(
    tmp_path: Path,
) -> None:
    from omniq.storage.sqlite._rows import _claim_sql

    path = tmp_path / "plan.db"
    async with AsyncSQLiteQueue(path=str(path)):
        pass
    _, claim = _claim_sql(2)
    params = {"project": "p", "q0": "a", "q1": "b", "now": 0, "limit": 10}
    params |= {"worker": "w", "lease_until": 1}
    with sqlite3.connect(path) as conn:
        plan = _plan(conn, claim, params)

    assert plan.count("USING INDEX omniq_tasks_claim") == 2
    # the only sort left is the merge of the (at most 2 x limit) rows the arms picked
    assert "SCAN omniq_tasks" not in plan


async def test_the_claim_finds_corrupt_ready_times_with_one_seek_per_queue(
    tmp_path: Path,
) -> None:
    """A claim also looks for pending tasks whose ready_at is text (it never comes due): at
    the end of the due index's range of each queue, never by reading the queue through."""
    from omniq.storage.sqlite._rows import _corrupt_sql

    path = tmp_path / "plan.db"
    async with AsyncSQLiteQueue(path=str(path)):
        pass
    params = {"project": "p", "q0": "a", "q1": "b", "limit": 10}
    with sqlite3.connect(path) as conn:
        plan = _plan(conn, _corrupt_sql(2), params)

    assert plan.count("USING INDEX omniq_tasks_due (project=? AND queue=? AND ready_at>?)") == 2
    assert "SCAN omniq_tasks" not in plan


@pytest.mark.parametrize(
    ("name", "params", "index"),
    [
        ("waited_on", ('["a", "b"]', "p"), "PRIMARY KEY"),
        ("dependents", {"ids": '["a"]', "project": "p"}, "PRIMARY KEY"),
        ("promote", {"ids": '["a"]', "project": "p"}, "sqlite_autoindex_omniq_tasks_1"),
        ("cancel_waiting", (0, "why", "p", "a"), "sqlite_autoindex_omniq_tasks_1"),
        ("get_tasks", {"ids": '["a"]', "project": "p"}, "sqlite_autoindex_omniq_tasks_1"),
        ("complete", {"pairs": '[["a", "c"]]', "project": "p", "now": 0}, "autoindex"),
        ("heartbeat", {"pairs": '[["a", "c"]]', "project": "p", "until": 0}, "autoindex"),
    ],
)
async def test_batch_statements_find_rows_by_id_never_by_walking_a_status(
    tmp_path: Path, name: str, params: Any, index: str
) -> None:
    from omniq.storage.sqlite import queue as sqlite_queue

    path = tmp_path / "plan.db"
    async with AsyncSQLiteQueue(path=str(path)):
        pass
    with sqlite3.connect(path) as conn:
        plan = _plan(conn, sqlite_queue.SQL[name], params)

    assert index in plan
    # neither the waiting rows of the status index nor a whole table, whatever its alias
    assert "omniq_tasks_status" not in plan
    assert re.search(r"SCAN (omniq_\w+|t|d)\b", plan) is None, plan


def _set_columns(sql: str) -> set[str]:
    """The columns an UPDATE statement assigns."""
    assignments = re.search(r"\bSET\b(.*?)\bWHERE\b", sql, re.S)
    assert assignments is not None, sql
    return set(re.findall(r"(\w+)\s*=(?!=)", re.sub(r"\([^()]*\)", "", assignments.group(1))))


@pytest.mark.parametrize(
    "name",
    ["claim", "complete", "heartbeat", "fail_retry", "fail_end", "release", "recover_pending"],
)
async def test_claims_and_acknowledgements_leave_the_function_index_alone(
    tmp_path: Path, name: str
) -> None:
    """SQLite rewrites an index entry only when the UPDATE sets one of its columns: the function
    index holds none that a claim, a heartbeat or an acknowledgement sets (migration 4's held the
    status, and cost a drain about 5 µs per task)."""
    from omniq.storage.sqlite._rows import SQL, _claim_sql

    path = tmp_path / "plan.db"
    async with AsyncSQLiteQueue(path=str(path)):
        pass
    with sqlite3.connect(path) as conn:
        indexed = {r[2] for r in conn.execute("PRAGMA index_info(omniq_tasks_func_queue)")}
    sql = _claim_sql(1)[1] if name == "claim" else SQL[name]

    assert indexed == {"project", "func", "queue", "seq"}
    assert "status" in _set_columns(sql) or name == "heartbeat"
    assert not _set_columns(sql) & indexed


@pytest.mark.parametrize(
    ("name", "status", "index"),
    [
        ("func_range", False, "omniq_tasks_func_queue (project=? AND func=? AND queue=? AND seq"),
        ("func_range", True, "omniq_tasks_func_queue (project=? AND func=? AND queue=? AND seq"),
        ("status_func_range", False, "omniq_tasks_queue_status (project=? AND queue=? AND"),
    ],
)
@pytest.mark.parametrize("descending", [False, True])
async def test_a_function_page_reads_one_index_range_in_its_order(
    tmp_path: Path, name: str, status: bool, index: str, descending: bool
) -> None:
    from omniq.storage.sqlite._listing import by_func_sql

    path = tmp_path / "plan.db"
    async with AsyncSQLiteQueue(path=str(path)):
        pass
    sql = by_func_sql(name, descending, status)
    with sqlite3.connect(path) as conn:
        plan = _plan(conn, sql, (None,) * sql.count("?"))

    assert f"USING INDEX {index}" in plan
    assert "TEMP B-TREE" not in plan  # the index yields the page in order; LIMIT stops early


@pytest.mark.parametrize("rare", [0, 10_000])
async def test_a_function_and_status_list_the_same_through_either_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rare: int
) -> None:
    """Whichever index the kept counts pick for a (queue, status), the page is the same: the
    one the generic fallback reads through every task."""
    from omniq.storage.base.listing import SupportsListing
    from omniq.storage.sqlite import _listing

    monkeypatch.setattr(_listing, "RARE_STATUS", rare)
    funcs = ("operator:add", "operator:mul", "operator:sub")
    async with AsyncSQLiteQueue(path=str(tmp_path / "f.db")) as queue:
        for i in range(60):
            await queue.enqueue(funcs[i % 3], args=(i, 1), queue_name="ab"[i % 2])
        for _ in range(25):
            task = await queue.dequeue(["a", "b"], lease=30)
            assert task is not None
            assert task.claim is not None
            if task.args[0] % 4:
                assert await queue.complete(task.id, task.claim)

        pages = 0
        for status in (TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.SUCCESS, None):
            for q in ("a", None):
                for fs in (["operator:mul"], ["operator:add", "operator:sub"]):
                    for after, descending in ((None, False), (None, True), ("mid", False)):
                        cursor = (await queue.list_tasks(limit=1, offset=30))[0].id
                        args = (q, status, fs, 7, 2, cursor if after else None, descending)
                        got = await queue._list_by_func(*args)
                        expected = await SupportsListing._list_by_func(queue, *args)
                        assert [t.id for t in got] == [t.id for t in expected], args
                        pages += bool(expected)
        assert pages >= 30  # most shapes have tasks to list


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({"task_id": "t"}, "omniq_events_task"),
        ({"event_type": "completed"}, "omniq_events_type"),
        ({"queue": "q"}, "omniq_events_queue"),
        ({"schedule_id": "s"}, "omniq_events_schedule"),
        ({}, "omniq_events_time"),
    ],
)
async def test_every_event_filter_uses_an_index(
    tmp_path: Path, filters: dict[str, str], index: str
) -> None:
    path = tmp_path / "events.db"
    captured: list[tuple[str, list[Any]]] = []
    async with AsyncSQLiteEventStorage(path=str(path)) as events:
        real_run = events.db.run

        async def capture(fn: Any) -> Any:
            class Spy:
                def execute(self, sql: str, params: list[Any]) -> Any:
                    captured.append((sql, params))
                    return raw.execute(sql, params)

            raw = sqlite3.connect(path)
            try:
                return fn(Spy())
            finally:
                raw.close()

        events.db.run = capture  # type: ignore[method-assign]
        try:
            await events.get_events(**filters)  # type: ignore[arg-type]
        finally:
            events.db.run = real_run  # type: ignore[method-assign]
    sql, params = captured[0]
    with sqlite3.connect(path) as conn:
        plan = _plan(conn, sql, params)

    assert f"USING INDEX {index}" in plan
    assert "TEMP B-TREE" not in plan


# -- the seeds' SQLite examples, as written (tmp_path as base_dir) -----------------------------
def test_seed_003_sqlite_result_storage_with_base_dir(tmp_path: Path) -> None:
    from omniq.storage import SQLiteResultStorage

    result_store = SQLiteResultStorage(base_dir=str(tmp_path))
    with result_store:
        result_store.set(TaskResult(task_id="t1", result="stored"))
        stored = result_store.get("t1")

    assert stored is not None
    assert stored.result == "stored"
    assert (tmp_path / "default.db").is_file()


def test_seed_003_sqlite_backend_with_omniq_from_backend_runs_a_task(tmp_path: Path) -> None:
    from omniq import OmniQ
    from omniq.backend import SQLiteBackend

    sqlite_backend = SQLiteBackend(project_name="my_project", base_dir=str(tmp_path))
    oq = OmniQ.from_backend(sqlite_backend, worker_type="async", worker_config={"max_workers": 10})
    try:
        oq.start_worker()
        task_id = oq.enqueue(func=greet, func_args=dict(name="Tom"))
        result = oq.get_result(task_id, timeout=10)
    finally:
        oq.stop_worker()
        oq.close()

    assert result == "Tom"
    assert (tmp_path / "my_project.db").is_file()


def multiply(x: int, y: int) -> int:
    return x * y


async def add_later(x: int, y: int) -> int:
    await asyncio.sleep(0.01)
    return x + y


def test_seed_003_component_usage_with_a_thread_pool_worker_on_sqlite(tmp_path: Path) -> None:
    """The seed's "Component-Based Usage" as written, with SQLite where it says File."""
    from omniq.queue import SQLiteTaskQueue
    from omniq.storage import SQLiteResultStorage
    from omniq.workers import ThreadPoolWorker

    base_dir = str(tmp_path / "some" / "path")
    queue = SQLiteTaskQueue(
        project_name="my_project", base_dir=base_dir, queues=["low", "medium", "high"]
    )
    result_store = SQLiteResultStorage(project_name="my_project", base_dir=base_dir)
    worker = ThreadPoolWorker(queue=queue, result_store=result_store, max_workers=20)
    worker.start()
    try:
        task_id = queue.enqueue(func=greet, func_args=dict(name="Tom"), queue_name="low")
        assert worker.get_result(task_id, timeout=10) == "Tom"  # the seed reads it at once
        result = result_store.get(task_id)
    finally:
        worker.stop()
    assert result is not None
    assert result.result == "Tom"

    # the stacked context managers
    with (
        SQLiteTaskQueue(project_name="my_project", base_dir=base_dir) as queue2,
        SQLiteResultStorage(project_name="my_project", base_dir=base_dir) as result_store2,
        ThreadPoolWorker(queue=queue2, result_store=result_store2) as worker2,
    ):
        task_id = queue2.enqueue(greet, func_args=dict(name="Tom"))
        assert worker2.get_result(task_id, timeout=10) == "Tom"
        stored = result_store2.get(task_id)
    assert stored is not None
    assert stored.result == "Tom"
    assert (tmp_path / "some" / "path" / "my_project.db").is_file()


def test_seed_003_sync_and_async_tasks_on_an_async_worker_on_sqlite(tmp_path: Path) -> None:
    from omniq.queue import SQLiteTaskQueue
    from omniq.workers import AsyncWorker

    queue = SQLiteTaskQueue(project_name="my_project", base_dir=str(tmp_path))
    worker = AsyncWorker(queue=queue, max_workers=10)
    worker.start()
    try:
        sync_task_id = queue.enqueue(multiply, func_args=dict(x=5, y=10))
        async_task_id = queue.enqueue(add_later, func_args=dict(x=5, y=10))
        assert worker.get_result(sync_task_id, timeout=10) == 50
        assert worker.get_result(async_task_id, timeout=10) == 15
    finally:
        worker.stop()


def test_seed_003_sqlite_result_storage_from_config(tmp_path: Path) -> None:
    from omniq.models import SQLiteResultStorageConfig
    from omniq.storage import SQLiteResultStorage

    result_store = SQLiteResultStorage.from_config(
        SQLiteResultStorageConfig(project_name="my_project", base_dir=str(tmp_path))
    )
    with result_store:
        result_store.set(TaskResult(task_id="t1", result=1))

    assert (tmp_path / "my_project.db").is_file()


async def test_seed_001_sqlite_backend_from_a_config_lists_its_tasks(tmp_path: Path) -> None:
    from omniq.backend import AsyncSQLiteBackend
    from omniq.models import SQLiteConfig

    sqlite_config = SQLiteConfig(project_name="export", base_dir=str(tmp_path))
    sqlite_backend = AsyncSQLiteBackend(sqlite_config)
    async with sqlite_backend:
        await sqlite_backend.queue.enqueue("operator:add", args=(1, 2))
        tasks = await sqlite_backend.queue.list_tasks()

    assert [t.args for t in tasks] == [(1, 2)]


async def test_backend_from_a_sqlite_url_keeps_everything_in_that_file(tmp_path: Path) -> None:
    from omniq.backend import create_backend

    target = tmp_path / "by-url.db"
    backend = create_backend(url=f"sqlite:///{target}")
    async with backend:
        assert backend.queue.path == backend.result_storage.path == target
        assert backend.queue.stores_results_with(backend.result_storage)
        await backend.event_storage.connect()
        assert backend.event_storage.path == target
