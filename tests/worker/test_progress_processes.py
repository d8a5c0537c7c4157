"""Progress across processes (issue 19, item 3): a sync task in a real ``omniq worker`` process
(thread pool, process pool, gevent) reports progress, and this process reads it from the store
while the task is still running, then reads the final report after the acknowledgement."""

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
from tests.worker import progress_tasks as pt


def _worker(url: str, worker_type: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "omniq", "worker", "--url", url, "--type", worker_type]
    command += ["--concurrency", "2", "--include", pt.__name__, "--log-level", "WARNING"]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)


@pytest.mark.parametrize("worker_type", ["thread", "process", "gevent"])
def test_a_running_task_s_progress_is_read_from_another_process(
    tmp_path: Path, worker_type: str
) -> None:
    if worker_type == "gevent":
        pytest.importorskip("gevent")
    url = f"sqlite:///{tmp_path / 'progress.db'}"
    marker, release = tmp_path / "marker", tmp_path / "release"
    with OmniQ.from_backend(create_backend(url=url)) as oq:
        task_id = oq.enqueue(pt.report_then_wait, args=(0.4, str(marker), str(release)))
        worker = _worker(url, worker_type)
        try:
            deadline = time.monotonic() + 60
            progress = None
            while time.monotonic() < deadline:
                progress = oq.get_progress(task_id)
                if progress is not None:
                    break
                time.sleep(0.05)
            assert progress is not None, "the running task's progress never reached the store"
            running = oq.get_task(task_id)
            assert running is not None
            assert running.status is TaskStatus.RUNNING
            assert progress.fraction == 0.4
            assert progress.attempt == 1
            # reported by the task's own process: the worker, or its pool's child
            assert progress.data["pid"] != os.getpid()
            assert progress.note == f"pid {progress.data['pid']}"
            if worker_type == "process":
                assert progress.data["pid"] != worker.pid

            release.touch()
            assert oq.get_result(task_id, timeout=60) == "released"
            final = oq.get_task(task_id)
            assert final is not None
            assert final.status is TaskStatus.SUCCESS
            assert final.progress is not None
            assert (final.progress.fraction, final.progress.note) == (1.0, "released")
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=30) == 0
