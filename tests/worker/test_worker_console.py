"""What a worker says on its console (issue 14, item 5): one line per failure, retry and DEAD with
the error (the traceback only at DEBUG), per-task lines at DEBUG, a periodic INFO summary; rich
on a terminal, plain lines elsewhere."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from rich.logging import RichHandler

from omniq import AsyncOmniQ
from omniq.config.logging import console_handler
from omniq.exceptions import TaskFailedError
from omniq.storage.memory import AsyncMemoryQueue
from omniq.workers._report import Summary
from tests import tasks_fixture as tf


@pytest.fixture
async def oq() -> AsyncIterator[AsyncOmniQ]:
    tf.reset()
    async with AsyncOmniQ(task_queue=AsyncMemoryQueue(lease_timeout=5.0)) as app:
        yield app


def worker_lines(caplog: pytest.LogCaptureFixture, task_id: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "omniq.worker" and task_id in r.getMessage()]


async def test_each_retry_and_the_dead_end_are_one_line_with_the_error(
    oq: AsyncOmniQ, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="omniq")
    await oq.start_worker()
    tid = await oq.enqueue(tf.boom, args=("kaput",), max_retries=1, retry_delay=0.01)
    with pytest.raises(TaskFailedError):
        await oq.get_result(tid, timeout=5)
    await oq.stop_worker()
    lines = worker_lines(caplog, tid)
    assert [r.levelno for r in lines] == [logging.WARNING, logging.ERROR]
    retry, dead = (r.getMessage() for r in lines)
    assert "tests.tasks_fixture:boom" in retry
    assert "failed (attempt 1/2): ValueError: kaput; retrying in" in retry
    assert "failed (attempt 2/2): ValueError: kaput; DEAD: out of attempts" in dead
    assert all("Traceback" not in r.getMessage() and r.exc_info is None for r in lines)


async def test_an_error_outside_retry_on_goes_dead_saying_why(
    oq: AsyncOmniQ, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="omniq")
    await oq.start_worker()
    tid = await oq.enqueue(
        tf.raise_type_error, max_retries=5, retry_delay=0.01, retry_on=[ValueError]
    )
    with pytest.raises(TaskFailedError):
        await oq.get_result(tid, timeout=5)
    await oq.stop_worker()
    (dead,) = worker_lines(caplog, tid)
    assert dead.levelno == logging.ERROR
    assert "DEAD: TypeError is not in retry_on" in dead.getMessage()


async def test_debug_shows_every_task_and_the_traceback_of_failures(
    oq: AsyncOmniQ, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="omniq")
    await oq.start_worker()
    ok = await oq.enqueue(tf.add, args=(1, 2))
    bad = await oq.enqueue(tf.boom, args=("kaput",), max_retries=0)
    assert await oq.get_result(ok, timeout=5) == 3
    with pytest.raises(TaskFailedError):
        await oq.get_result(bad, timeout=5)
    await oq.stop_worker()
    ok_lines = [r.getMessage() for r in worker_lines(caplog, ok)]
    assert any("received from 'default' (attempt 1/" in m for m in ok_lines)
    assert any(" succeeded in " in m for m in ok_lines)
    (dead,) = [r.getMessage() for r in worker_lines(caplog, bad) if r.levelno == logging.ERROR]
    assert "Traceback (most recent call last)" in dead
    assert "raise ValueError(message)" in dead or "ValueError: kaput" in dead.splitlines()[-1]


async def test_per_task_lines_stay_out_of_the_info_console(
    oq: AsyncOmniQ, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="omniq")
    await oq.start_worker()
    tid = await oq.enqueue(tf.add, args=(1, 2))
    assert await oq.get_result(tid, timeout=5) == 3
    await oq.stop_worker()
    assert worker_lines(caplog, tid) == []


async def test_a_summary_line_reports_processed_failed_rate_and_waiting(
    oq: AsyncOmniQ, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="omniq")
    worker = oq.create_worker(summary_interval=0.2, queues=["default", "other"])
    await worker.start()
    try:
        ids = [await oq.enqueue(tf.add, args=(i, i)) for i in range(3)]
        for tid in ids:
            await oq.get_result(tid, timeout=5)
        summaries: list[str] = []
        for _ in range(50):
            summaries = [r.getMessage() for r in caplog.records if "processed 3" in r.getMessage()]
            if summaries:
                break
            await asyncio.sleep(0.1)
    finally:
        await worker.stop()
    assert summaries, [r.getMessage() for r in caplog.records]
    line = summaries[0]
    assert f"worker {worker.name}: processed 3 (+3), failed 0 (+0), " in line
    assert "/s, running 0, waiting default=0, other=0" in line


def test_an_idle_worker_writes_no_summary() -> None:
    summary = Summary("w")
    assert summary.line(0, 0, 0, {"default": 0}) is None
    assert summary.line(2, 1, 0, {"default": 0}) is not None
    assert summary.line(2, 1, 0, {"default": 0}) is None  # nothing new since
    assert summary.line(2, 1, 0, {"default": 4}) is not None  # work is waiting


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_console_is_rich_on_a_terminal_and_plain_lines_elsewhere() -> None:
    assert isinstance(console_handler(_Terminal()), RichHandler)
    stream = io.StringIO()
    handler = console_handler(stream)
    assert not isinstance(handler, RichHandler)
    record = logging.LogRecord("omniq.worker", logging.WARNING, __file__, 1, "x failed", None, None)
    handler.handle(record)
    assert stream.getvalue().endswith(": WARNING/omniq.worker] x failed\n")


def test_omniq_worker_prints_failures_by_default(tmp_path: Path) -> None:
    """The command as a newcomer runs it: no --log-level, output to a pipe."""
    (tmp_path / "console_tasks.py").write_text(
        textwrap.dedent(
            """
            def explode():
                raise RuntimeError("the disk is full")
            """
        )
    )
    url = f"sqlite:///{tmp_path / 'w.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIQ_")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(Path.cwd())])
    enqueue = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from omniq import OmniQ; from omniq.backend import create_backend\n"
            "with OmniQ.from_backend(create_backend(url=sys.argv[1], project_name='c')) as oq:\n"
            "    oq.enqueue('console_tasks:explode')",
            url,
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert enqueue.returncode == 0, enqueue.stderr
    omniq = Path(sys.executable).with_name("omniq")
    proc = subprocess.Popen(
        [str(omniq), "worker", "--url", url, "--project", "c", "--include", "console_tasks"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            seen.append(line)
            if "DEAD" in line:
                break
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    dead = [line for line in seen if "DEAD" in line]
    assert dead, "".join(seen)
    assert ": ERROR/omniq.worker] console_tasks:explode[" in dead[0]
    assert "RuntimeError: the disk is full; DEAD: out of attempts" in dead[0]
