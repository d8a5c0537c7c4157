"""Cancelling a running task (issue 14, item 4): ``cancel`` says truthfully whether the task was
stopped, and the request reaches the worker through the backend's own wake-up, not at the next
heartbeat."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from omniq import AsyncOmniQ, Task, TaskStatus
from omniq.backend import create_backend
from omniq.exceptions import TaskCancelledError, TaskNotFound
from omniq.storage.memory import AsyncMemoryQueue
from tests import tasks_fixture as tf
from tests.conftest import service_address


async def finishes_anyway() -> str:
    """A task that does not let itself be stopped: it catches the cancellation and returns."""
    try:
        await asyncio.sleep(0.3)
    except asyncio.CancelledError:
        return "finished anyway"
    return "done"


@pytest.fixture
async def oq() -> AsyncIterator[AsyncOmniQ]:
    tf.reset()
    async with AsyncOmniQ(task_queue=AsyncMemoryQueue(lease_timeout=5.0)) as app:
        yield app


async def wait_running(oq: AsyncOmniQ, task_id: str, tries: int = 500) -> None:
    for _ in range(tries):
        task = await oq.get_task(task_id)
        if task is not None and task.status is TaskStatus.RUNNING:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"task {task_id} never ran")


async def test_cancel_of_a_running_task_is_true_once_its_worker_stopped_it(oq: AsyncOmniQ) -> None:
    await oq.start_worker(heartbeat_interval=0.02)
    tid = await oq.enqueue(tf.async_sleep, args=(30,))
    await wait_running(oq, tid)

    assert await oq.cancel(tid, wait=5) is True

    task = await oq.get_task(tid)
    assert task is not None
    assert task.status is TaskStatus.CANCELLED


async def test_cancel_of_a_task_that_finishes_before_it_stops_is_false(oq: AsyncOmniQ) -> None:
    await oq.start_worker(heartbeat_interval=0.02)
    tid = await oq.enqueue(finishes_anyway)
    await wait_running(oq, tid)

    assert await oq.cancel(tid, wait=5) is False

    assert await oq.get_result(tid, timeout=5) == "finished anyway"


async def test_cancel_of_a_running_task_nobody_stops_within_wait_is_false(oq: AsyncOmniQ) -> None:
    tid = await oq.enqueue(tf.async_sleep, args=(30,))
    claimed = await oq.task_queue.dequeue(worker_id="gone", lease=5)  # a worker that vanished
    assert claimed is not None
    assert claimed.id == tid

    assert await oq.cancel(tid, wait=0.2) is False


async def test_cancel_of_a_waiting_task_is_true_at_once(oq: AsyncOmniQ) -> None:
    tid = await oq.enqueue(tf.record, args=("never",), run_in=60)

    assert await oq.cancel(tid) is True

    with pytest.raises(TaskCancelledError):
        await oq.get_result(tid, timeout=1)


async def test_cancel_of_a_finished_task_is_false(oq: AsyncOmniQ) -> None:
    await oq.start_worker()
    tid = await oq.enqueue(tf.add, args=(1, 2))
    assert await oq.get_result(tid, timeout=5) == 3

    assert await oq.cancel(tid) is False


async def test_cancel_of_an_unknown_task_raises(oq: AsyncOmniQ) -> None:
    with pytest.raises(TaskNotFound):
        await oq.cancel("no-such-task")


async def test_a_task_stopped_between_its_claim_and_its_first_step_ends_cancelled(
    oq: AsyncOmniQ,
) -> None:
    """A stop that lands after the claim but before the task's runner took its first step (a
    cancel signal racing the claim) is recorded, not lost with the task left RUNNING."""
    worker = oq.create_worker(heartbeat_interval=600)
    queue = oq.task_queue
    claim_many = queue.dequeue_many

    async def claim_then_stop(*args: Any, **kwargs: Any) -> list[Task]:
        tasks = await claim_many(*args, **kwargs)
        for task in tasks:
            await queue.cancel(task.id)
            # runs after the worker created the runner, before the runner's first step
            asyncio.get_running_loop().call_soon(worker._stop_running, task.id, "cancel")
        return tasks

    queue.dequeue_many = claim_then_stop  # type: ignore[method-assign]
    tid = await oq.enqueue(tf.async_sleep, args=(30,))
    await worker.start()
    try:
        with pytest.raises(TaskCancelledError):
            await oq.get_result(tid, timeout=5)
        task = await oq.get_task(tid)
        assert task is not None
        assert task.status is TaskStatus.CANCELLED
    finally:
        await worker.stop(graceful=False)


def _url(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'cancel.db'}"
    if kind == "memory":
        return "memory://"
    host, port = service_address(kind)
    return (
        f"redis://{host}:{port}/7"
        if kind == "redis"
        else f"postgresql://postgres@{host}:{port}/test"
    )


@pytest.mark.parametrize(
    "kind",
    [
        "memory",
        "sqlite",
        pytest.param("redis", marks=pytest.mark.services("redis")),
        pytest.param("postgres", marks=pytest.mark.services("postgres")),
    ],
)
async def test_a_running_task_is_stopped_without_waiting_for_a_heartbeat(
    kind: str, tmp_path: Path
) -> None:
    backend = create_backend(url=_url(kind, tmp_path), project_name=f"c-{uuid.uuid4().hex[:8]}")
    async with AsyncOmniQ.from_backend(backend) as app:
        # no heartbeat during the test: only the cancel signal can reach the worker
        await app.start_worker(heartbeat_interval=600)
        tid = await app.enqueue(tf.async_sleep, args=(60,))
        await wait_running(app, tid)

        assert await app.cancel(tid, wait=10) is True

        task = await app.get_task(tid)
        assert task is not None
        assert task.status is TaskStatus.CANCELLED


def test_a_worker_in_another_process_hears_the_cancel_through_the_wake_sockets(
    tmp_path: Path,
) -> None:
    """SQLite has no server: the signal crosses processes as a datagram beside the database."""
    url = f"sqlite:///{tmp_path / 'cross.db'}"
    repo = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIQ_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "omniq", "worker", "--url", url, "--project", "x"]
    command += ["--include", "tests.tasks_fixture", "--log-level", "WARNING"]
    worker = subprocess.Popen(
        command,
        cwd=repo,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    async def scenario() -> bool:
        async with AsyncOmniQ.from_backend(create_backend(url=url, project_name="x")) as app:
            tid = await app.enqueue("tests.tasks_fixture:async_sleep", args=(60,))
            await wait_running(app, tid, tries=3000)
            # the worker's heartbeat comes every 10 s: well after this wait
            return await app.cancel(tid, wait=5)

    try:
        assert asyncio.run(scenario()) is True
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
