"""The gevent worker: a monkey-patched ``omniq worker --type gevent`` process running blocking
tasks as greenlets. Concurrency is proven by the overlap of the tasks' own time spans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from omniq import OmniQ, TaskStatus
from omniq.backend import create_backend
from omniq.exceptions import ConfigError
from omniq.workers import GeventPoolWorker, GeventWorker
from omniq.workers.gevent import GeventExecutor
from tests import tasks_fixture as tf

pytest.importorskip("gevent")


def peak_overlap(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = peak = 0
    for _, delta in edges:
        running += delta
        peak = max(peak, running)
    return peak


def test_gevent_pool_of_200_overlaps_200_blocking_sleeps(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gevent.db'}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]),
    }
    with OmniQ.from_backend(create_backend(url=url)) as oq:
        ids = oq.enqueue_many(
            [{"func": tf.blocking_sleep_span, "args": (0.5,)} for _ in range(200)]
        )
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "omniq",
                "worker",
                "--url",
                url,
                "--type",
                "gevent",
                "--concurrency",
                "200",
                "--include",
                tf.__name__,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        try:
            spans = [tuple(oq.get_result(t, timeout=60)) for t in ids]
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=30) == 0
    peak = peak_overlap(spans)
    print(f"peak concurrently running: {peak}")
    assert peak >= 150  # many at once, not one after another


def _gevent_worker(url: str, *extra: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "omniq", "worker", "--url", url, "--type", "gevent"]
    command += ["--include", tf.__name__, *extra]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)


def _wait_running(oq: OmniQ, task_ids: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tasks = [oq.get_task(t) for t in task_ids]
        if all(t is not None and t.status is TaskStatus.RUNNING for t in tasks):
            return
        time.sleep(0.05)
    raise AssertionError(f"tasks never all ran at once: {tasks!r}")


def test_sigterm_lets_short_greenlets_finish_and_hands_long_ones_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gevent-stop.db'}"
    with OmniQ.from_backend(create_backend(url=url)) as oq:
        short = oq.enqueue(tf.sync_sleep, args=(1.0,))
        long = oq.enqueue(tf.sync_sleep, args=(60,))
        worker = _gevent_worker(url, "--concurrency", "10", "--shutdown-timeout", "5")
        try:
            _wait_running(oq, [short, long])
            late = oq.enqueue(tf.add, args=(1, 2))
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=60) == 0
        finally:
            if worker.poll() is None:
                worker.kill()
        finished, handed_back, untouched = (oq.get_task(t) for t in (short, long, late))
    assert finished is not None
    assert finished.status is TaskStatus.SUCCESS  # within the grace period
    assert handed_back is not None
    assert handed_back.status is TaskStatus.PENDING  # past it: handed back for another worker
    assert handed_back.attempts == 0
    assert untouched is not None
    # enqueued as the signal came: claimed and finished before the stop, or never claimed
    assert untouched.status in (TaskStatus.SUCCESS, TaskStatus.PENDING)


async def test_gevent_executor_refuses_an_unpatched_process() -> None:
    with pytest.raises(ConfigError, match="monkey-patched"):
        await GeventExecutor(4).start()


def test_gevent_worker_alias() -> None:
    assert GeventWorker is GeventPoolWorker
