"""One bad record never breaks a project-wide call. Corrupt records are written straight into
the real stores (a status that is no status, attempts that are no number, a queue name that is
no queue name, a ready time that is no time); each must be listed as DEAD with the reason
("CorruptRecord"), made DEAD when a claimer meets it, and every other task must read and run as
usual, including ``omniq info``."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from omniq.exceptions import SerializationError
from omniq.models.task import Task, TaskStatus
from omniq.storage.base import BaseTaskQueue
from tests.conftest import service_address

FUNC = "tests.tasks_fixture:add"


def _tasks() -> list[Task]:
    return [Task(func=FUNC, args=(i, i), id=f"task-{i}") for i in range(4)]


def _info(url: str, project: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "omniq", "info", "--url", url, "--project", project],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
        check=False,
    )


async def _assert_listed_and_readable(queue: BaseTaskQueue, bad: str, reason: str) -> None:
    listed = {t.id: t for t in await queue.list_tasks()}
    assert sorted(listed) == [f"task-{i}" for i in range(4)]
    assert listed[bad].status is TaskStatus.DEAD
    assert listed[bad].error_type == "CorruptRecord"
    assert reason in (listed[bad].error_message or "")
    for task_id, task in listed.items():
        if task_id != bad:
            assert task.status is TaskStatus.PENDING
            assert task.error_type is None
    got = await queue.get_task(bad)
    assert got is not None
    assert got.status is TaskStatus.DEAD
    assert reason in (got.error_message or "")
    assert (await queue.get_task("task-3")) is not None


async def _claim_all(queue: BaseTaskQueue, bad: str) -> None:
    """A claimer takes every good task, and the corrupt one is DEAD afterwards."""
    claimed = await queue.dequeue_many(limit=10)
    assert sorted(t.id for t in claimed) == sorted(
        f"task-{i}" for i in range(4) if f"task-{i}" != bad
    )
    assert {t.args for t in claimed} <= {(i, i) for i in range(4)}
    assert await queue.dequeue_many(limit=10) == []
    dead = await queue.get_task(bad)
    assert dead is not None
    assert dead.status is TaskStatus.DEAD
    assert dead.error_type == "CorruptRecord"


# -- SQLite ----------------------------------------------------------------------------------------
@pytest.fixture
async def sqlite_queue(tmp_path: Path) -> AsyncIterator[tuple[Any, Path]]:
    from omniq.storage.sqlite import AsyncSQLiteQueue

    path = tmp_path / "queue.db"
    async with AsyncSQLiteQueue(path=path, project_name="p") as queue:
        await queue.enqueue_many(_tasks())
        yield queue, path


def _sqlite_write(path: Path, sql: str, *params: Any) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(sql, params)


async def test_sqlite_a_bogus_status_is_listed_as_corrupt_and_info_names_it(
    sqlite_queue: tuple[Any, Path],
) -> None:
    queue, path = sqlite_queue
    _sqlite_write(path, "UPDATE omniq_tasks SET status = 'bogus' WHERE id = 'task-1'")

    await _assert_listed_and_readable(queue, "task-1", "'bogus'")
    assert len(await queue.dequeue_many(limit=10)) == 3
    info = _info(f"sqlite:///{path}", "p")
    assert info.returncode == 0, info.stderr
    assert "corrupt: 1 task record(s) of queue 'default' with the status 'bogus'" in info.stdout


async def test_sqlite_a_garbage_ready_at_is_made_dead_by_the_claimer_not_left_pending(
    sqlite_queue: tuple[Any, Path],
) -> None:
    queue, path = sqlite_queue
    _sqlite_write(path, "UPDATE omniq_tasks SET ready_at = 'garbage' WHERE id = 'task-2'")

    await _assert_listed_and_readable(queue, "task-2", "ready_at 'garbage' is not a time")
    await _claim_all(queue, "task-2")
    dead = await queue.get_task("task-2")
    assert dead is not None
    assert "ready_at 'garbage'" in (dead.error_message or "")
    assert (await queue.stats()) == {"default": {"running": 3, "dead": 1}}


# -- Redis -----------------------------------------------------------------------------------------
@pytest.fixture
async def redis_queue() -> AsyncIterator[tuple[Any, str]]:
    pytest.importorskip("redis")
    from reliability.harness import unlink_project

    from omniq.storage.redis import AsyncRedisQueue

    host, port = service_address("redis")
    project = f"test-{uuid.uuid4().hex[:12]}"
    try:
        async with AsyncRedisQueue(host=host, port=port, project_name=project) as queue:
            await queue.enqueue_many(_tasks())
            yield queue, f"omniq:tasks:{{{project}}}:task:"
    finally:
        await unlink_project(host, port, project)


@pytest.mark.services("redis")
async def test_redis_a_bogus_status_is_listed_as_corrupt_and_made_dead_by_a_claim(
    redis_queue: tuple[Any, str],
) -> None:
    queue, key = redis_queue
    await queue.redis.hset(f"{key}task-0", "st", "bogus")

    await _assert_listed_and_readable(queue, "task-0", "'bogus'")
    await _claim_all(queue, "task-0")
    dead = await queue.get_task("task-0")
    assert "status bogus is not a task status" in (dead.error_message or "")


@pytest.mark.services("redis")
async def test_redis_attempts_that_are_no_number_break_neither_get_task_nor_the_claim(
    redis_queue: tuple[Any, str],
) -> None:
    queue, key = redis_queue
    await queue.redis.hset(f"{key}task-3", "att", "x")

    await _assert_listed_and_readable(queue, "task-3", "attempts b'x' is not an integer")
    await _claim_all(queue, "task-3")
    assert (await queue.stats()) == {"default": {"running": 3, "dead": 1}}


# -- PostgreSQL ------------------------------------------------------------------------------------
@pytest.fixture
async def postgres_queue() -> AsyncIterator[tuple[Any, str, str]]:
    asyncpg = pytest.importorskip("asyncpg")
    from omniq.storage.postgres import AsyncPostgresQueue

    host, port = service_address("postgres")
    schema = f"omniq_test_{uuid.uuid4().hex[:12]}"
    url = f"postgresql://postgres@{host}:{port}/test?schema={schema}"
    try:
        async with AsyncPostgresQueue(url=url, project_name="p") as queue:
            await queue.enqueue_many(_tasks())
            yield queue, url, schema
    finally:
        conn = await asyncpg.connect(host=host, port=port, user="postgres", database="test")
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


@pytest.mark.services("postgres")
async def test_postgres_a_bad_queue_value_is_listed_as_corrupt_and_info_still_works(
    postgres_queue: tuple[Any, str, str],
) -> None:
    queue, url, schema = postgres_queue
    await queue.pool.execute(
        f"UPDATE \"{schema}\".tasks SET queue = 'bad queue!' WHERE id = 'task-2'"
    )

    await _assert_listed_and_readable(queue, "task-2", "invalid queue name 'bad queue!'")
    info = _info(url, "p")
    assert info.returncode == 0, info.stderr
    assert "with the queue name 'bad queue!', which is no queue name" in info.stdout
    assert len(await queue.dequeue_many(limit=10)) == 3


# -- File (a local folder) -------------------------------------------------------------------------
@pytest.fixture
async def file_queue(tmp_path: Path) -> AsyncIterator[tuple[Any, Path]]:
    from omniq.storage.file import AsyncFileQueue

    base = tmp_path / "objects"
    async with AsyncFileQueue(base_dir=str(base), project_name="p") as queue:
        await queue.enqueue_many(_tasks())
        yield queue, base


def _file_state(base: Path) -> Any:
    import msgspec

    (path,) = base.glob("**/p/state")
    return msgspec.msgpack.decode(path.read_bytes())


def _file_write(base: Path, task_id: str, field: str, value: Any) -> None:
    """What a broker-writer does to the state object (msgpack: ``tasks`` maps each id to
    ``[task fields, seq, payload object, start, end]``): read it, change one task field, and
    write it back by replacing the file (a new etag, so the queue reads it again)."""
    import msgspec

    (path,) = base.glob("**/p/state")
    state = _file_state(base)
    state["tasks"][task_id][0][field] = value
    tmp = path.with_name("state.tmp")
    tmp.write_bytes(msgspec.msgpack.encode(state))
    tmp.replace(path)


async def _drain_with_a_worker(queue: BaseTaskQueue, good: list[str]) -> None:
    """A real worker runs every good task to SUCCESS beside the corrupt record."""
    import asyncio

    from omniq.workers import AsyncWorker

    worker = AsyncWorker(queue, concurrency=4, task_modules=["tests.tasks_fixture"])
    await worker.start()
    try:
        for _ in range(300):
            got = [await queue.get_task(i) for i in good]
            if all(t is not None and t.status is TaskStatus.SUCCESS for t in got):
                break
            await asyncio.sleep(0.05)
        assert [t.status if t else None for t in got] == [TaskStatus.SUCCESS] * len(good)
    finally:
        await worker.stop()
        await worker.result_store.close()


async def test_file_a_bogus_status_breaks_no_call_and_info_still_works(
    file_queue: tuple[Any, Path],
) -> None:
    queue, base = file_queue
    _file_write(base, "task-1", "status", "bogus")

    await _assert_listed_and_readable(queue, "task-1", "status 'bogus'")
    assert (await queue.stats()) == {"default": {"pending": 3, "dead": 1}}
    info = _info(f"file://{base}", "p")
    assert info.returncode == 0, info.stderr
    assert "dead" in info.stdout.lower()
    await _claim_all(queue, "task-1")
    dead = await queue.get_task("task-1")
    assert dead is not None
    assert dead.args == (1, 1)  # its payload is still read
    # the claim wrote the state: the record is stored as DEAD, with the reason, from now on
    stored = _file_state(base)["tasks"]["task-1"][0]
    assert (stored["status"], stored["error_type"]) == ("dead", "CorruptRecord")
    assert "status 'bogus'" in stored["error_message"]


async def test_file_attempts_that_are_no_number_leave_a_worker_running_the_others(
    file_queue: tuple[Any, Path],
) -> None:
    queue, base = file_queue
    _file_write(base, "task-3", "attempts", "x")

    await _assert_listed_and_readable(queue, "task-3", "attempts 'x'")
    await _drain_with_a_worker(queue, ["task-0", "task-1", "task-2"])
    dead = await queue.get_task("task-3")
    assert dead is not None
    assert dead.status is TaskStatus.DEAD
    assert dead.error_type == "CorruptRecord"
    assert (await queue.stats()) == {"default": {"success": 3, "dead": 1}}


async def test_file_a_record_that_is_no_record_and_a_bad_queue_name(
    file_queue: tuple[Any, Path],
) -> None:
    """A task record that is no map at all, and one whose queue name is no queue name: both
    listed as corrupt, the others claimed."""
    import msgspec

    queue, base = file_queue
    _file_write(base, "task-2", "queue_name", "bad queue!")
    (path,) = base.glob("**/p/state")
    state = _file_state(base)
    state["tasks"]["task-0"] = "garbage"
    path.write_bytes(msgspec.msgpack.encode(state))

    listed = {t.id: t for t in await queue.list_tasks()}
    assert sorted(listed) == [f"task-{i}" for i in range(4)]
    assert listed["task-0"].error_type == listed["task-2"].error_type == "CorruptRecord"
    assert "'garbage'" in (listed["task-0"].error_message or "")
    assert "invalid queue name 'bad queue!'" in (listed["task-2"].error_message or "")
    claimed = await queue.dequeue_many(limit=10)
    assert sorted(t.id for t in claimed) == ["task-1", "task-3"]
    assert (await queue.stats()) == {
        "default": {"running": 2, "dead": 1},
        "bad queue!": {"pending": 1},
    }
    # purging the dead record that points into no payload object deletes no object
    assert await queue.purge_dead() == 1
    assert sorted(t.id for t in await queue.list_tasks()) == ["task-1", "task-2", "task-3"]


# -- NATS ------------------------------------------------------------------------------------------
@pytest.fixture
async def nats_queue() -> AsyncIterator[Any]:
    pytest.importorskip("nats")
    from omniq.storage.nats import AsyncNATSQueue
    from omniq.storage.nats._conn import delete_project

    host, port = service_address("nats")
    project = f"corrupt-{uuid.uuid4().hex[:10]}"
    try:
        async with AsyncNATSQueue(servers=[f"nats://{host}:{port}"], project_name=project) as q:
            await q.enqueue_many(_tasks())
            yield q
    finally:
        async with AsyncNATSQueue(servers=[f"nats://{host}:{port}"], project_name=project) as q:
            await delete_project(q)


async def _nats_write(queue: Any, task_id: str, index: int | None, value: Any) -> None:
    """What a broker-writer does to the task's record in the project's KV bucket (msgpack: an
    array of fields, see ``nats._records.Record``): change field ``index``, or, with None, put
    ``value`` as the whole record."""
    import msgspec

    from omniq.storage.nats._store import task_key

    key = task_key(task_id)
    if index is not None:
        found = await queue._kv.get(key)
        fields = msgspec.msgpack.decode(found[0])
        fields[index] = value
        value = msgspec.msgpack.encode(fields)
    await queue._kv.put(key, value)


async def _nats_stored(queue: Any, task_id: str) -> list[Any]:
    import msgspec

    from omniq.storage.nats._store import task_key

    found = await queue._kv.get(task_key(task_id))
    return msgspec.msgpack.decode(found[0])  # type: ignore[no-any-return]


@pytest.mark.services("nats")
async def test_nats_a_bogus_status_is_listed_as_corrupt_and_made_dead_by_a_claim(
    nats_queue: Any,
) -> None:
    queue = nats_queue
    await _nats_write(queue, "task-1", 6, "bogus")

    await _assert_listed_and_readable(queue, "task-1", "'bogus'")
    assert (await queue.stats()) == {"default": {"pending": 3, "bogus": 1}}
    claimed = await queue.dequeue_many(limit=10, timeout=1)
    assert sorted(t.id for t in claimed) == ["task-0", "task-2", "task-3"]
    assert (await queue.stats()) == {"default": {"running": 3, "dead": 1}}
    stored = await _nats_stored(queue, "task-1")
    assert (stored[6], stored[16]) == ("dead", "CorruptRecord")
    assert "'bogus'" in stored[17]


@pytest.mark.services("nats")
async def test_nats_attempts_that_are_no_number_and_bytes_that_are_no_record(
    nats_queue: Any,
) -> None:
    queue = nats_queue
    await _nats_write(queue, "task-3", 7, "x")
    await _nats_write(queue, "task-0", None, b"\xc1 not msgpack")

    listed = {t.id: t for t in await queue.list_tasks()}
    assert sorted(listed) == [f"task-{i}" for i in range(4)]
    for bad in ("task-0", "task-3"):
        assert listed[bad].status is TaskStatus.DEAD
        assert listed[bad].error_type == "CorruptRecord"
    assert "attempts" in (listed["task-3"].error_message or "")
    assert listed["task-3"].args == (3, 3)  # its payload still reads
    assert (await queue.get_task("task-1")).status is TaskStatus.PENDING
    await _drain_with_a_worker(queue, ["task-1", "task-2"])
    # the record that is no msgpack has no queue to count it under: '?', which is no queue name
    assert (await queue.stats()) == {"default": {"success": 2, "dead": 1}, "?": {"dead": 1}}
    gone = await queue.get_task("task-0")
    assert gone is not None
    assert "MessagePack" in (gone.error_message or "")
    # the worker's claims met both: each record is now stored DEAD, with the reason
    for bad in ("task-0", "task-3"):
        stored = await _nats_stored(queue, bad)
        assert (stored[6], stored[16]) == ("dead", "CorruptRecord")
    assert (await _nats_stored(queue, "task-3"))[5]  # the payload it had is kept
    assert await queue.purge_dead() == 2
    assert sorted(t.id for t in await queue.list_tasks()) == ["task-1", "task-2"]


# -- an unreadable schedule ------------------------------------------------------------------------
_PICKLE = bytes((0x02,)) + b"\x80\x04crandom\nrandom\n)R."  # unsigned dill: never loaded


async def _two_due_schedules(queue: Any) -> tuple[str, str]:
    from datetime import timedelta

    from omniq._time import utcnow
    from omniq.models.schedule import Schedule

    when = utcnow() - timedelta(seconds=1)
    ids = []
    for n in (1, 2):
        schedule = Schedule(func=FUNC, args=(n, n), interval=60.0, next_run_at=when)
        ids.append(await queue.save_schedule(schedule))
    return ids[0], ids[1]


async def _the_other_schedule_runs_on(
    queue: Any, bad: str, good: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The unreadable schedule fails neither the listing nor the scheduler's read of the due
    ones (before: both raised, so no schedule of the project ran), and is reported once."""
    import logging

    caplog.set_level(logging.WARNING)
    for _ in range(2):
        assert [s.id for s in await queue.list_schedules()] == [good]
        assert [s.id for s in await queue.claim_due_schedules()] == [good]
    reports = [r for r in caplog.records if "cannot be read and is skipped" in r.getMessage()]
    assert len(reports) == 1, [r.getMessage() for r in reports]
    assert "dill payload refused" in reports[0].getMessage()
    with pytest.raises(SerializationError):
        await queue.get_schedule(bad)  # the one asked for by id: its caller is told


async def test_sqlite_an_unreadable_schedule_leaves_the_others_running(
    sqlite_queue: tuple[Any, Path], caplog: pytest.LogCaptureFixture
) -> None:
    queue, path = sqlite_queue
    bad, good = await _two_due_schedules(queue)
    _sqlite_write(path, "UPDATE omniq_schedules SET payload = ? WHERE id = ?", _PICKLE, bad)
    await _the_other_schedule_runs_on(queue, bad, good, caplog)


@pytest.mark.services("redis")
async def test_redis_an_unreadable_schedule_leaves_the_others_running(
    redis_queue: tuple[Any, str], caplog: pytest.LogCaptureFixture
) -> None:
    import redis.asyncio as aioredis

    queue, _ = redis_queue
    bad, good = await _two_due_schedules(queue)
    host, port = service_address("redis")
    client = aioredis.Redis(host=host, port=port)
    try:
        key = f"omniq:tasks:{{{queue.project_name}}}:sched:{bad}"
        assert await client.hset(key, "p", _PICKLE) == 0  # type: ignore[misc]
    finally:
        await client.aclose()
    await _the_other_schedule_runs_on(queue, bad, good, caplog)


@pytest.mark.services("postgres")
async def test_postgres_an_unreadable_schedule_leaves_the_others_running(
    postgres_queue: tuple[Any, str, str], caplog: pytest.LogCaptureFixture
) -> None:
    import asyncpg

    queue, _, schema = postgres_queue
    bad, good = await _two_due_schedules(queue)
    host, port = service_address("postgres")
    conn = await asyncpg.connect(host=host, port=port, user="postgres", database="test")
    try:
        await conn.execute(
            f'UPDATE "{schema}".schedules SET payload = $1 WHERE id = $2', _PICKLE, bad
        )
    finally:
        await conn.close()
    await _the_other_schedule_runs_on(queue, bad, good, caplog)
