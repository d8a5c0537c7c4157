"""File-backend behaviour beyond the conformance suite: several worker processes on one folder
and on one S3 bucket, a worker killed with SIGKILL, clear errors at start, storage_options
names, the URL forms and environment variables, group commit, idle polling, archiving of
finished tasks and the result sweep."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import time
from collections import Counter
from multiprocessing.synchronize import Event as MPEvent
from pathlib import Path
from typing import Any

import pytest

from omniq.exceptions import BackendUnavailable, ConfigError
from omniq.models.result import ResultStatus, TaskResult
from omniq.models.task import Task, TaskStatus
from omniq.storage.base import Completion
from omniq.storage.file import AsyncFileEventStorage, AsyncFileQueue, AsyncFileResultStorage
from omniq.storage.file._store import open_location
from tests.backends.object_servers import AZURITE_KEY, shared_azurite, shared_s3

TASKS = 2_000
WORKER_PROCESSES = 4
_LOG_FDS: dict[str, int] = {}
FUNC = f"{__name__}:record_execution"


async def record_execution(index: int, out_dir: str, work: float = 0.0) -> int:
    """Appends ``index`` to this process's log: one line per execution, never lost or merged."""
    path = os.path.join(out_dir, f"{os.getpid()}.log")
    fd = _LOG_FDS.get(path)
    if fd is None:
        fd = _LOG_FDS[path] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(fd, f"{index}\n".encode())
    if work:
        await asyncio.sleep(work)
    return index


def _until(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _where(kind: str, tmp_path: Path) -> tuple[str, dict[str, str] | None]:
    if kind == "local":
        return str(tmp_path / "objects"), None
    server = shared_s3()
    return f"s3://{server.create_bucket()}/omniq", server.options()


# -- several worker processes ------------------------------------------------------------------
def _serve(
    base_dir: str, options: dict[str, str] | None, lease: float, ready: MPEvent, done: str
) -> None:
    asyncio.run(_serve_async(base_dir, options, lease, ready, done))


async def _serve_async(
    base_dir: str, options: dict[str, str] | None, lease: float, ready: MPEvent, done: str
) -> None:
    from omniq.workers import AsyncWorker

    queue = AsyncFileQueue(base_dir=base_dir, storage_options=options, lease_timeout=lease)
    # this module's functions: stored by the parent, so this process was told about them
    worker = AsyncWorker(
        queue, concurrency=50, idle_timeout=1.0, recover_interval=1.0, task_modules=[__name__]
    )
    await worker.start()
    ready.set()
    # serve until the parent says the run is over: a file, as an Event's set() hangs once one of
    # its waiters was SIGKILLed
    await asyncio.to_thread(_until, lambda: os.path.exists(done), 600)
    await worker.stop()
    await worker.result_store.close()
    await queue.close()


class Workers:
    """Worker processes (spawned, so nothing of the test's loop leaks into them)."""

    def __init__(
        self,
        n: int,
        base_dir: str,
        options: dict[str, str] | None,
        done: Path,
        lease: float = 120.0,  # exactly-once is the point here, not lease recovery under load
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.done = done
        self.ready = [ctx.Event() for _ in range(n)]
        self.procs = [
            ctx.Process(target=_serve, args=(base_dir, options, lease, r, str(done)))
            for r in self.ready
        ]

    async def start(self) -> None:
        for proc in self.procs:
            proc.start()
        for event in self.ready:
            assert await asyncio.to_thread(event.wait, 60), "a worker process did not start"

    async def stop(self) -> None:
        self.done.touch()
        for proc in self.procs:
            await asyncio.to_thread(proc.join, 90)
            if proc.is_alive():
                proc.kill()


async def _drained(queue: AsyncFileQueue, tasks: int, timeout: float) -> dict[str, dict[str, int]]:
    """The queue's counts once every task ended (or at the deadline): one read a poll, where
    thousands of result waiters would flood a small S3 server."""
    deadline = time.monotonic() + timeout
    final = ("success", "dead", "cancelled", "expired")
    while True:
        stats = await queue.stats()
        ended = sum(stats.get("default", {}).get(s, 0) for s in final)
        if ended >= tasks or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(0.2)


def _executions(out_dir: Path) -> Counter[int]:
    return Counter(int(line) for log in out_dir.iterdir() for line in log.read_text().splitlines())


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["local", "s3"])
async def test_worker_processes_on_one_store_run_every_task_exactly_once(
    tmp_path: Path, kind: str
) -> None:
    base_dir, options = _where(kind, tmp_path)
    out_dir = tmp_path / "executions"
    out_dir.mkdir()
    workers = Workers(WORKER_PROCESSES, base_dir, options, tmp_path / "stop")
    await workers.start()
    try:
        async with (
            AsyncFileQueue(base_dir=base_dir, storage_options=options) as queue,
            AsyncFileResultStorage(base_dir=base_dir, storage_options=options) as results,
        ):
            ids: list[str] = []
            for start in range(0, TASKS, 250):  # several enqueues while the workers drain
                ids += await queue.enqueue_many(
                    [
                        Task(func=f"{__name__}:record_execution", args=(i, str(out_dir)))
                        for i in range(start, start + 250)
                    ]
                )
            stats = await _drained(queue, TASKS, 240)
            found = await results.get_many(ids)
    finally:
        await workers.stop()

    assert [found[t].result if t in found else None for t in ids] == list(range(TASKS))
    assert stats == {"default": {"success": TASKS}}
    executions = _executions(out_dir)
    assert sorted(executions) == list(range(TASKS)), "some task never ran"
    assert [i for i, n in executions.items() if n > 1] == [], "some task ran twice"
    assert len(list(out_dir.iterdir())) >= 2, "the tasks were not shared between processes"
    assert all(proc.exitcode == 0 for proc in workers.procs)


@pytest.mark.timeout(180)
async def test_a_worker_killed_with_sigkill_loses_no_task(tmp_path: Path) -> None:
    base_dir = str(tmp_path / "objects")
    out_dir = tmp_path / "executions"
    out_dir.mkdir()
    tasks = 400
    workers = Workers(2, base_dir, None, tmp_path / "stop", lease=2.0)
    await workers.start()
    victim = workers.procs[0]
    try:
        async with (
            AsyncFileQueue(base_dir=base_dir) as queue,
            AsyncFileResultStorage(base_dir=base_dir) as results,
        ):
            ids = await queue.enqueue_many(
                [
                    Task(
                        func=f"{__name__}:record_execution",
                        args=(i, str(out_dir), 0.02),
                        max_retries=3,
                    )
                    for i in range(tasks)
                ]
            )
            victim_log = out_dir / f"{victim.pid}.log"
            started = await asyncio.to_thread(
                _until,
                lambda: victim_log.exists() and len(victim_log.read_text().splitlines()) >= 20,
                60,
            )
            assert started, "the worker to kill never ran a task"
            assert victim.pid is not None
            os.kill(victim.pid, signal.SIGKILL)
            stats = await _drained(queue, tasks, 120)
            found = await results.get_many(ids)
    finally:
        await workers.stop()

    assert [found[t].result if t in found else None for t in ids] == list(range(tasks))
    assert stats == {"default": {"success": tasks}}
    executions = _executions(out_dir)
    assert sorted(executions) == list(range(tasks)), "a task was lost"
    killed_ran = {int(x) for x in victim_log.read_text().splitlines()}
    twice = {i for i, n in executions.items() if n > 1}
    assert twice <= killed_ran, "a task ran twice though the killed worker never ran it"
    assert victim.exitcode == -signal.SIGKILL


# -- claims are atomic between writers ---------------------------------------------------------
@pytest.mark.parametrize("where", ["local", "memory"])
async def test_two_writers_racing_on_one_state_never_claim_one_task_twice(
    tmp_path: Path, where: str
) -> None:
    base_dir = str(tmp_path / "objects") if where == "local" else f"memory://race-{os.getpid()}"
    async with (
        AsyncFileQueue(base_dir=base_dir, project_name="race") as a,
        AsyncFileQueue(base_dir=base_dir, project_name="race") as b,
    ):
        # two queues, two state logs: each write of one makes the other's next write conflict
        assert a.log is not b.log
        ids = await a.enqueue_many([Task(func=FUNC, args=(i,)) for i in range(200)])
        claimed: list[str] = []

        async def drain(q: AsyncFileQueue) -> None:
            while tasks := await q.dequeue_many(limit=3, worker_id=str(id(q))):
                claimed.extend(t.id for t in tasks)

        await asyncio.gather(*(drain(q) for q in (a, b, a, b)))
    assert sorted(claimed) == sorted(ids)
    assert a.log.conflicts + b.log.conflicts > 0, "the writers never raced: the test proves nothing"


async def test_concurrent_enqueues_share_state_writes(tmp_path: Path) -> None:
    async with AsyncFileQueue(base_dir=str(tmp_path)) as queue:
        before = queue.log.commits
        await asyncio.gather(*(queue.enqueue(FUNC, args=(i,)) for i in range(100)))
        writes = queue.log.commits - before
        assert await queue.get_queue_size() == 100
    assert writes < 50, f"{writes} state writes for 100 concurrent enqueues: no group commit"


async def test_a_claim_that_finds_nothing_writes_nothing(tmp_path: Path) -> None:
    async with AsyncFileQueue(base_dir=str(tmp_path)) as queue:
        before = queue.log.commits
        assert await queue.dequeue() is None
        assert queue.log.commits == before


async def test_idle_waiting_backs_off_instead_of_polling_hard(tmp_path: Path) -> None:
    async with AsyncFileQueue(
        base_dir=str(tmp_path), poll_interval=0.05, max_poll_interval=0.4
    ) as queue:
        before = queue.objects.requests
        assert await queue.dequeue(timeout=2.0) is None
        polls = queue.objects.requests - before
    # 0.05 + 0.1 + 0.2 + 0.4 + 0.4 ... covers 2 s in about 8 reads; a tight poll needs dozens
    assert polls <= 12, f"{polls} object requests while idle for 2 s"


async def test_an_enqueue_of_this_process_wakes_an_idle_claimer_at_once(tmp_path: Path) -> None:
    async with (
        AsyncFileQueue(base_dir=str(tmp_path), poll_interval=60, max_poll_interval=60) as waiter,
        AsyncFileQueue(base_dir=str(tmp_path)) as producer,
    ):
        claim = asyncio.ensure_future(waiter.dequeue(timeout=50))
        await asyncio.sleep(0.1)  # the claimer is asleep for a 60 s poll now
        task_id = await producer.enqueue(FUNC)
        got = await asyncio.wait_for(claim, 30)  # only the local wake-up can come this soon
    assert got is not None
    assert got.id == task_id


# -- finished tasks leave the state object -----------------------------------------------------
async def test_succeeded_tasks_beyond_keep_finished_move_out_and_stay_readable(
    tmp_path: Path,
) -> None:
    async with AsyncFileQueue(base_dir=str(tmp_path), keep_finished=10) as queue:
        ids = await queue.enqueue_many([Task(func=FUNC, args=(i,)) for i in range(120)])
        claimed = await queue.dequeue_many(limit=120)
        await queue.complete_many([Completion(t.id, t.claim or "") for t in claimed])
        in_state = await queue.log.run(lambda state, txn: len(state.tasks))
        first = await queue.get_task(ids[0])
        stats = await queue.stats()
        listed = await queue.list_tasks(status=TaskStatus.SUCCESS, limit=200)
        payloads = await queue.objects.list(queue.objects.key(queue.project_name, "payloads/"))
    assert in_state <= 60
    assert first is not None
    assert (first.status, first.args) == (TaskStatus.SUCCESS, (0,))
    assert stats == {"default": {"success": 120}}
    assert sorted(t.id for t in listed) == sorted(ids)
    assert payloads != [], "the payload object went while archived tasks still point into it"


# -- results -------------------------------------------------------------------------------------
async def test_cleanup_sweeps_expired_results_and_keeps_the_rest(tmp_path: Path) -> None:
    async with AsyncFileResultStorage(base_dir=str(tmp_path)) as results:
        await results.set(TaskResult(task_id="old", status=ResultStatus.SUCCESS, ttl=0.01))
        await results.set(TaskResult(task_id="new", status=ResultStatus.SUCCESS, ttl=3600))
        await results.set(TaskResult(task_id="forever", status=ResultStatus.SUCCESS))
        await asyncio.sleep(0.05)
        assert await results.cleanup() == 1
        left = sorted(
            o["path"].rsplit("/", 1)[-1] for o in await results.objects.list(results._root + "/r/")
        )
        markers = await results.objects.list(results._root + "/expiry/")
    assert left == ["forever", "new"]
    assert len(markers) == 1


# -- errors at start, naming the place and never the credentials -------------------------------
async def test_a_folder_that_cannot_be_created_is_named_at_start(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(BackendUnavailable, match="cannot create the folder") as caught:
        AsyncFileQueue(base_dir=str(blocker / "queue"))
    assert str(blocker / "queue") in str(caught.value)


@pytest.mark.parametrize(
    "component", [AsyncFileQueue, AsyncFileResultStorage, AsyncFileEventStorage]
)
async def test_a_folder_that_cannot_be_written_is_named_at_start(component: Any) -> None:
    # /proc/self exists and refuses new files even to root, unlike a chmod-ed folder
    store = component(base_dir="/proc/self")
    with pytest.raises(BackendUnavailable, match="/proc/self"):
        await store.connect()


async def test_a_missing_bucket_is_named_at_start() -> None:
    server = shared_s3()
    queue = AsyncFileQueue(base_dir="s3://no-such-bucket-here/x", storage_options=server.options())
    with pytest.raises(BackendUnavailable, match=r"no-such-bucket-here.*does not exist") as caught:
        await queue.connect()
    assert "testing" not in str(caught.value)


@pytest.mark.parametrize(
    "component", [AsyncFileQueue, AsyncFileResultStorage, AsyncFileEventStorage]
)
async def test_a_missing_container_is_named_at_start(component: Any) -> None:
    server = shared_azurite()
    store = component(base_dir="az://no-such-container/x", storage_options=server.options())
    with pytest.raises(BackendUnavailable, match=r"az://no-such-container/x.*does not exist"):
        await store.connect()


async def test_refused_credentials_are_reported_without_them() -> None:
    server = shared_azurite()
    container = server.create_container()
    wrong_key = AZURITE_KEY[:-8] + "AAAAAAA="
    results = AsyncFileResultStorage(
        base_dir=f"az://{container}/omniq",
        storage_options={**server.options(), "account_key": wrong_key},
    )
    with pytest.raises(BackendUnavailable, match="refused the credentials") as caught:
        await results.connect()
    assert container in str(caught.value)
    assert wrong_key not in str(caught.value)
    assert AZURITE_KEY not in str(caught.value)


# -- base_dir and storage_options --------------------------------------------------------------
def test_fsspec_option_names_map_to_obstore_ones() -> None:
    location = open_location(
        "s3://bucket/some/prefix",
        {"key": "AK", "secret": "SK", "endpoint_url": "http://127.0.0.1:9", "region_name": "eu-1"},
    )
    config = location.store.config
    assert (config["access_key_id"], config["secret_access_key"]) == ("AK", "SK")
    assert (config["endpoint"], config["region"]) == ("http://127.0.0.1:9", "eu-1")
    assert location.prefix == "some/prefix/"
    assert "SK" not in location.shown


def test_azure_container_at_account_form_names_the_account() -> None:
    location = open_location(
        "abfs://box@myaccount.dfs.core.windows.net/omniq", {"account_key": AZURITE_KEY}
    )
    assert location.store.config["account_name"] == "myaccount"
    assert location.prefix == "omniq/"


def test_an_unknown_storage_option_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError, match="no_such_option"):
        open_location("s3://bucket/x", {"no_such_option": "1"})


def test_storage_options_for_a_local_folder_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="key"):
        open_location(str(tmp_path), {"key": "x"})


def test_an_unknown_scheme_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError, match="'ftp'"):
        open_location("ftp://host/x")


@pytest.mark.parametrize("variable", ["OMNIQ_OBSTORE_URI", "OMNIQ_FSSPEC_URI"])
async def test_the_environment_says_where_without_base_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    from omniq.config import env as env_module

    monkeypatch.setenv(variable, f"file://{tmp_path}/from-env")
    monkeypatch.setattr(env_module, "_cached", None)
    async with AsyncFileQueue(project_name="envp") as queue:
        await queue.enqueue(FUNC)
    assert (tmp_path / "from-env" / "envp" / "state").exists()


async def test_memory_urls_name_one_store_per_process() -> None:
    name = f"memory://shared-{time.monotonic_ns()}"
    async with AsyncFileQueue(base_dir=name) as a, AsyncFileQueue(base_dir=name) as b:
        task_id = await a.enqueue(FUNC)
        assert await b.get_task(task_id) is not None


async def test_a_result_written_by_another_process_wakes_its_waiter_through_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # two spellings of one folder: two object stores, as two processes would have, so the
    # writer's local wake-up cannot reach the waiter
    waiter_side = AsyncFileResultStorage(base_dir=str(tmp_path))
    writer_side = AsyncFileResultStorage(base_dir=f"file://{tmp_path}")
    assert waiter_side.objects is not writer_side.objects
    monkeypatch.setattr(AsyncFileResultStorage, "RECHECK", 120.0)  # no waiter re-reads its own
    async with waiter_side, writer_side:
        waiting = asyncio.ensure_future(waiter_side.wait("t-1", timeout=100))
        await asyncio.sleep(0.2)
        await writer_side.set(TaskResult(task_id="t-1", status=ResultStatus.SUCCESS, result=7))
        got = await asyncio.wait_for(waiting, 60)  # only the log poller can wake it this soon
    assert got is not None
    assert got.result == 7
