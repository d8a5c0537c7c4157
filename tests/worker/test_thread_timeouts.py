"""A sync task that hangs past its timeout cannot be killed (it is a thread): it is reported as
timed out, and the worker must neither lose the thread's capacity nor wait for it at exit."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from omniq import AsyncOmniQ, OmniQ
from omniq.backend import create_backend
from omniq.models.result import ResultStatus
from omniq.workers.executors import TaskThreadPool
from tests import tasks_fixture as tf
from tests.test_cli import subprocess_env


@pytest.mark.parametrize("worker_type", ["thread", "async"])
async def test_a_hung_sync_task_times_out_and_the_next_tasks_still_run(worker_type: str) -> None:
    async with AsyncOmniQ.from_backend(create_backend("memory")) as oq:
        await oq.start_worker(worker_type=worker_type, concurrency=1)
        try:
            hung = await oq.enqueue(tf.hang_forever, timeout=0.3, max_retries=0)
            result = await oq.get_task_result(hung, timeout=30)
            assert result is not None
            assert result.status is ResultStatus.ERROR
            assert result.error_type == "TaskTimeout"
            # concurrency 1, and its one thread is stuck for good: the followers still run
            followers = [await oq.enqueue(tf.add, args=(i, i)) for i in range(5)]
            assert [await oq.get_result(f, timeout=30) for f in followers] == [0, 2, 4, 6, 8]
        finally:
            await oq.stop_worker()


def test_the_pool_keeps_its_capacity_when_calls_are_abandoned() -> None:
    pool = TaskThreadPool(2)
    release = threading.Event()
    try:
        stuck = [pool.submit(release.wait) for _ in range(2)]
        deadline = time.monotonic() + 10
        while any(not f.running() for f in stuck):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        for future in stuck:
            pool.abandon(future)
        assert pool.abandoned == 2
        # both original threads are busy forever; the replacements serve
        assert [pool.submit(pow, 2, i).result(timeout=10) for i in range(4)] == [1, 2, 4, 8]
        release.set()
        for future in stuck:
            assert future.result(timeout=10) is True
        deadline = time.monotonic() + 10
        while pool.abandoned:  # retired threads leave once their call returns
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        release.set()
        pool.shutdown(wait=True)


def test_a_pool_thread_whose_outcome_raises_keeps_serving() -> None:
    pool = TaskThreadPool(1)
    try:

        def broken(ok: bool, value: object) -> None:
            raise RuntimeError("nowhere to hand it")

        pool.call(lambda: 1, broken)
        # the one thread is still there: later calls run
        assert [pool.submit(pow, 2, i).result(timeout=10) for i in range(3)] == [1, 2, 4]
    finally:
        pool.shutdown(wait=True)


def test_a_worker_process_with_a_hung_thread_exits_on_sigterm(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hang.db'}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "omniq",
            "worker",
            "--url",
            url,
            "--type",
            "thread",
            "--include",
            tf.__name__,
        ],
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with OmniQ.from_backend(create_backend(url=url)) as oq:
            hung = oq.enqueue(tf.hang_forever, timeout=0.5, max_retries=0)
            result = oq.get_task_result(hung, timeout=60)
            assert result is not None
            assert result.error_type == "TaskTimeout"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
