"""The worker behaviours every worker type keeps, on the memory and SQLite backends.

The gevent type needs a monkey-patched process: :func:`test_the_matrix_passes_for_gevent` runs this
same file again in a patched child process, where the gevent cases are collected (and the
others deselected). The gevent worker process as users start it (``omniq worker --type gevent``)
is exercised in test_gevent_worker.py."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from omniq import AsyncOmniQ, TaskStatus
from omniq.backend import create_backend
from omniq.exceptions import TaskCancelledError, TaskFailedError
from tests import tasks_fixture as tf


def _gevent_patched() -> bool:
    if "gevent" not in sys.modules:
        return False
    from gevent import monkey

    return bool(monkey.is_module_patched("socket"))


#: gevent only where it can run: in a monkey-patched process (see test_the_matrix_passes_for_gevent)
WORKER_TYPES = ["async", "thread", "process"] + (["gevent"] if _gevent_patched() else [])
BACKENDS = ["memory", "sqlite"]


@pytest.fixture(
    params=[(b, w) for b in BACKENDS for w in WORKER_TYPES], ids=lambda p: f"{p[0]}-{p[1]}"
)
async def oq(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncOmniQ]:
    backend_name, worker_type = request.param
    url = "memory://" if backend_name == "memory" else f"sqlite:///{tmp_path / 'matrix.db'}"
    app = AsyncOmniQ.from_backend(
        create_backend(url=url), worker_type=worker_type, worker_config={"max_workers": 2}
    )
    async with app:
        yield app


async def wait_for_status(oq: AsyncOmniQ, task_id: str, status: TaskStatus) -> None:
    for _ in range(1500):
        task = await oq.get_task(task_id)
        if task is not None and task.status is status:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"task {task_id} never reached {status.value}: {task!r}")


async def test_runs_sync_and_async_functions(oq: AsyncOmniQ) -> None:
    await oq.start_worker()
    sync_id = await oq.enqueue(tf.multiply, args=(6, 7))
    async_id = await oq.enqueue(tf.async_add, args=(40, 2))
    assert await oq.get_result(sync_id, timeout=30) == 42
    assert await oq.get_result(async_id, timeout=30) == 42


async def test_retries_then_ends_dead_with_the_error(oq: AsyncOmniQ) -> None:
    await oq.start_worker()
    tid = await oq.enqueue(tf.boom, args=("matrix",), max_retries=1, retry_delay=0.01)
    with pytest.raises(TaskFailedError) as info:
        await oq.get_result(tid, timeout=30)
    assert info.value.error_type == "ValueError"
    task = await oq.get_task(tid)
    assert task is not None
    assert task.status is TaskStatus.DEAD
    assert task.attempts == 2


async def test_async_task_past_its_timeout_fails_with_task_timeout(oq: AsyncOmniQ) -> None:
    await oq.start_worker()
    tid = await oq.enqueue(tf.async_sleep, args=(30,), timeout=0.2, max_retries=0)
    with pytest.raises(TaskFailedError) as info:
        await oq.get_result(tid, timeout=30)
    assert info.value.error_type == "TaskTimeout"


async def test_stop_hands_running_tasks_back_without_counting_the_attempt(oq: AsyncOmniQ) -> None:
    await oq.start_worker()
    tid = await oq.enqueue(tf.async_sleep, args=(30,))
    for _ in range(300):
        task = await oq.get_task(tid)
        if task is not None and task.status is TaskStatus.RUNNING:
            break
        await asyncio.sleep(0.02)
    await oq.stop_worker(timeout=0.1)
    task = await oq.get_task(tid)
    assert task is not None
    assert task.status is TaskStatus.PENDING
    assert task.attempts == 0


async def test_a_batch_of_tasks_completes_exactly_once(oq: AsyncOmniQ) -> None:
    await oq.start_worker()
    ids = await oq.enqueue_many([{"func": tf.add, "args": (i, i)} for i in range(100)])
    values = await asyncio.gather(*(oq.get_result(t, timeout=60) for t in ids))
    assert values == [2 * i for i in range(100)]
    stats = await oq.task_queue.stats()
    assert stats == {"default": {"success": 100}}


async def test_a_sync_task_past_its_timeout_fails_with_task_timeout_and_the_worker_serves_on(
    oq: AsyncOmniQ,
) -> None:
    """Killed (process, gevent) or abandoned and reported (threads): the task fails all the same."""
    await oq.start_worker()
    tid = await oq.enqueue(tf.sync_sleep, args=(3,), timeout=0.2, max_retries=0)
    with pytest.raises(TaskFailedError) as info:
        await oq.get_result(tid, timeout=30)
    assert info.value.error_type == "TaskTimeout"
    after = await oq.enqueue(tf.add, args=(1, 1))
    assert await oq.get_result(after, timeout=30) == 2


async def test_heartbeats_keep_a_task_claimed_past_its_lease(oq: AsyncOmniQ) -> None:
    """The task outlives its lease several times over: only heartbeats keep the claim, or lease
    recovery (every 0.1 s here) would take it back and run it again."""
    await oq.start_worker(lease=0.6, recover_interval=0.1)
    tid = await oq.enqueue(tf.sync_sleep, args=(2.0,), max_retries=3)
    assert await oq.get_result(tid, timeout=30) == "slept"
    task = await oq.get_task(tid)
    assert task is not None
    assert task.status is TaskStatus.SUCCESS
    assert task.attempts == 1, "the lease ran out and the task ran again"


async def test_graceful_stop_finishes_running_tasks_and_claims_no_more(oq: AsyncOmniQ) -> None:
    await oq.start_worker()
    running = await oq.enqueue(tf.sync_sleep, args=(0.8,))
    await wait_for_status(oq, running, TaskStatus.RUNNING)

    stopping = asyncio.create_task(oq.stop_worker(timeout=20))
    await asyncio.sleep(0.1)
    late = await oq.enqueue(tf.add, args=(1, 2))
    await stopping

    done = await oq.get_task(running)
    assert done is not None
    assert done.status is TaskStatus.SUCCESS  # finished within the grace period
    waiting = await oq.get_task(late)
    assert waiting is not None
    assert waiting.status is TaskStatus.PENDING  # enqueued while stopping: left for others
    assert waiting.attempts == 0


async def test_a_handed_back_task_is_taken_by_the_next_worker_at_once(oq: AsyncOmniQ) -> None:
    """Hand-back makes the task PENDING again, so a new worker runs it without waiting for any
    lease to run out (the lease here is long: waiting for it would fail the test)."""
    await oq.start_worker(lease=60)
    tid = await oq.enqueue(tf.sync_sleep, args=(30,))
    await wait_for_status(oq, tid, TaskStatus.RUNNING)
    await oq.stop_worker(timeout=0.1)

    handed_back = await oq.get_task(tid)
    assert handed_back is not None
    assert handed_back.status is TaskStatus.PENDING
    await oq.start_worker(lease=60)
    await wait_for_status(oq, tid, TaskStatus.RUNNING)
    await oq.stop_worker(timeout=0.1)


async def test_the_worker_publishes_its_type_and_stats_while_it_serves(oq: AsyncOmniQ) -> None:
    await oq.start_worker(recover_interval=0.1)
    assert oq.worker is not None
    worker_type = oq.worker.worker_type
    try:
        ok = [await oq.enqueue(tf.add, args=(i, i)) for i in range(3)]
        bad = await oq.enqueue(tf.boom, args=("stats",), max_retries=0)
        for tid in ok:
            await oq.get_result(tid, timeout=30)
        with pytest.raises(TaskFailedError):
            await oq.get_result(bad, timeout=30)
        for _ in range(600):  # the record is renewed every recover_interval
            [info] = await oq.list_workers()
            if info.processed == 4:
                break
            await asyncio.sleep(0.05)
        assert info.worker_type == worker_type
        assert info.pid == os.getpid()
        assert info.concurrency == 2
        assert (info.processed, info.succeeded, info.failed, info.dead) == (4, 3, 1, 1)
        assert info.running == 0
    finally:
        await oq.stop_worker()
    assert await oq.list_workers() == []


async def test_a_running_task_cancelled_stops_at_its_next_heartbeat(oq: AsyncOmniQ) -> None:
    """Killed (process, gevent), cancelled (async functions) or abandoned (a sync function in a
    thread): the task ends CANCELLED and the worker serves on."""
    await oq.start_worker(heartbeat_interval=0.05)
    tid = await oq.enqueue(tf.sync_sleep, args=(3,))
    await wait_for_status(oq, tid, TaskStatus.RUNNING)
    assert await oq.cancel(tid) is True
    with pytest.raises(TaskCancelledError):
        await oq.get_result(tid, timeout=30)
    task = await oq.get_task(tid)
    assert task is not None
    assert task.status is TaskStatus.CANCELLED
    after = await oq.enqueue(tf.add, args=(2, 3))
    assert await oq.get_result(after, timeout=30) == 5


@pytest.mark.skipif(_gevent_patched(), reason="this is the run inside the patched process")
@pytest.mark.timeout(600)
def test_the_matrix_passes_for_gevent() -> None:
    pytest.importorskip("gevent")
    script = (
        "from gevent import monkey; monkey.patch_all()\n"
        "import sys, pytest\n"
        "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', sys.argv[1], '-k', 'gevent']))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")])),
    }
    run = subprocess.run(
        [sys.executable, "-c", script, __file__],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    # every case ran on both backends under gevent, none was skipped or deselected by mistake
    cases = sum(1 for name in dir(sys.modules[__name__]) if name.startswith("test_")) - 1
    assert f"{cases * len(BACKENDS)} passed" in run.stdout, run.stdout[-4000:]
