"""The process-pool worker: calls cross to child processes as envelope bytes; hung children are
killed at the timeout and replaced; a dying child fails only its own task."""

from __future__ import annotations

import asyncio
import operator
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from omniq import AsyncOmniQ, TaskStatus
from omniq.exceptions import TaskFailedError
from omniq.models.task import Task
from omniq.storage.memory import AsyncMemoryQueue
from omniq.workers import ProcessExecutor, ProcessPoolWorker, ProcessWorker
from tests import tasks_fixture as tf


@pytest.fixture
async def oq() -> AsyncIterator[AsyncOmniQ]:
    async with AsyncOmniQ(worker_type="process", worker_config={"max_workers": 2}) as app:
        await app.start_worker()
        yield app


async def test_runs_sync_and_async_functions_in_child_processes(oq: AsyncOmniQ) -> None:
    sync_id = await oq.enqueue(tf.multiply, func_args=dict(x=5, y=10))
    async_id = await oq.enqueue(tf.async_add, func_args=dict(x=5, y=10))
    pid_id = await oq.enqueue(tf.whoami)
    assert await oq.get_result(sync_id, timeout=30) == 50
    assert await oq.get_result(async_id, timeout=30) == 15
    assert await oq.get_result(pid_id, timeout=30) != os.getpid()


async def test_lambdas_and_closures_cross_through_dill(oq: AsyncOmniQ) -> None:
    factor = 7
    tid = await oq.enqueue(lambda x: x * factor, args=(6,))
    assert await oq.get_result(tid, timeout=30) == 42


async def test_remote_exception_keeps_its_type_name_and_traceback(oq: AsyncOmniQ) -> None:
    tid = await oq.enqueue(tf.boom, args=("in a child",), max_retries=0)
    with pytest.raises(TaskFailedError) as info:
        await oq.get_result(tid, timeout=30)
    assert info.value.error_type == "ValueError"
    assert info.value.error_message == "in a child"
    assert "boom" in (info.value.traceback or "")


async def test_hung_task_is_killed_at_its_timeout_and_the_next_task_runs(oq: AsyncOmniQ) -> None:
    hung = await oq.enqueue(tf.hang_forever, timeout=0.5, max_retries=0)
    with pytest.raises(TaskFailedError) as info:
        await oq.get_result(hung, timeout=30)
    assert info.value.error_type == "TaskTimeout"
    after = await oq.enqueue(tf.add, args=(1, 2))
    assert await oq.get_result(after, timeout=30) == 3


async def test_task_killing_its_process_ends_dead_after_its_retries_and_the_worker_serves_on(
    oq: AsyncOmniQ,
) -> None:
    poison = await oq.enqueue(tf.die_hard, max_retries=2, retry_delay=0.01)
    with pytest.raises(TaskFailedError) as info:
        await oq.get_result(poison, timeout=60)
    assert info.value.error_type == "ChildProcessDied"
    task = await oq.get_task(poison)
    assert task is not None
    assert task.status is TaskStatus.DEAD
    assert task.attempts == 3
    after = await oq.enqueue(tf.add, args=(2, 2))
    assert await oq.get_result(after, timeout=30) == 4


def hang_after_telling_pid(path: str) -> None:
    """Writes its process id where the test can read it, then never returns."""
    Path(path).write_text(str(os.getpid()))
    while True:
        time.sleep(1)


def segfault() -> None:
    import ctypes

    ctypes.string_at(0)  # reads address 0: SIGSEGV


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_hung_child_is_killed_at_the_timeout_and_replaced(tmp_path: Path) -> None:
    """With one child, the task after a hung one can only run if the pool replaced it."""
    pid_file = tmp_path / "hung.pid"
    async with AsyncOmniQ(worker_type="process", worker_config={"max_workers": 1}) as oq:
        await oq.start_worker()
        hung = await oq.enqueue(
            hang_after_telling_pid, args=(str(pid_file),), timeout=2, max_retries=0
        )
        with pytest.raises(TaskFailedError) as info:
            await oq.get_result(hung, timeout=30)
        assert info.value.error_type == "TaskTimeout"
        hung_pid = int(pid_file.read_text())
        assert not _alive(hung_pid), f"the hung child {hung_pid} is still running"

        after = await oq.enqueue(tf.whoami)
        new_pid = await oq.get_result(after, timeout=30)
        assert new_pid not in (hung_pid, os.getpid())


async def test_a_segfaulting_task_fails_alone_and_the_pool_carries_on(oq: AsyncOmniQ) -> None:
    crash = await oq.enqueue(segfault, max_retries=1, retry_delay=0.01)
    with pytest.raises(TaskFailedError) as info:
        await oq.get_result(crash, timeout=60)
    assert info.value.error_type == "ChildProcessDied"
    assert "-11" in (info.value.error_message or "")  # killed by SIGSEGV
    task = await oq.get_task(crash)
    assert task is not None
    assert task.status is TaskStatus.DEAD
    assert task.attempts == 2
    values = await asyncio.gather(
        *[oq.get_result(await oq.enqueue(tf.add, args=(i, 1)), timeout=30) for i in range(4)]
    )
    assert values == [1, 2, 3, 4]


async def test_starting_a_child_does_not_count_against_the_task_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each new child here takes a second to start (a sitecustomize that sleeps, as a loaded
    machine or heavy imports would); a task with half a second to run still succeeds."""
    (tmp_path / "sitecustomize.py").write_text("import time\ntime.sleep(1.0)\n")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    )
    executor = ProcessExecutor(1, start_method="spawn")
    await executor.start()
    try:
        task = Task(func="operator:add", args=(2, 3), timeout=0.5)
        assert await executor.run(task, operator.add) == 5
    finally:
        await executor.shutdown()


def test_a_plain_fork_is_refused_naming_the_start_methods() -> None:
    """A fork of a process running an event loop (and its threads) is not safe."""
    with pytest.raises(ValueError, match="'fork'"):
        ProcessExecutor(2, start_method="fork")


def test_process_worker_alias() -> None:
    assert ProcessWorker is ProcessPoolWorker


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


async def test_worker_memory_stays_flat_over_10000_tasks() -> None:
    async with AsyncOmniQ(
        task_queue=AsyncMemoryQueue(),
        worker_type="process",
        worker_config={"max_workers": 2},
    ) as oq:
        await oq.start_worker()
        warmup = await oq.enqueue_many([{"func": tf.add, "args": (i, i)} for i in range(1000)])
        await asyncio.gather(*(oq.get_result(t, timeout=60) for t in warmup))
        before = _rss_kib()
        ids = await oq.enqueue_many([{"func": tf.add, "args": (i, i)} for i in range(10_000)])
        await asyncio.gather(*(oq.get_result(t, timeout=120) for t in ids))
        await oq.result_store.cleanup()
        grown = _rss_kib() - before
    assert grown < 50 * 1024, f"worker RSS grew by {grown} KiB over 10,000 tasks"


def test_a_child_whose_parent_is_gone_exits_quietly() -> None:
    """The parent (a SIGKILLed worker) vanishes while its child runs a task: the child finishes,
    finds nobody to answer and exits 0, without a BrokenPipeError traceback."""
    import multiprocessing

    from omniq.serialization import Serializer
    from omniq.workers.process import _child_main

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=True)
    process = ctx.Process(target=_child_main, args=(child,))
    process.start()
    child.close()
    assert parent.recv_bytes()  # ready
    task = Task(func="tests.tasks_fixture:sync_sleep", args=(0.2,))
    parent.send_bytes(Serializer(local=True).encode_task(task))
    parent.close()
    process.join(30)
    assert process.exitcode == 0
