"""``OMNIQ_DASHBOARD_ENABLED=1 omniq worker`` serves the dashboard beside the worker, on
``OMNIQ_DASHBOARD_PORT``, and stops it with the worker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_worker_with_the_dashboard_enabled_serves_it(tmp_path: Path) -> None:
    port = free_port()
    env = dict(
        os.environ,
        OMNIQ_DASHBOARD_ENABLED="1",
        OMNIQ_DASHBOARD_PORT=str(port),
        PYTHONPATH=str(ROOT),
        COLUMNS="200",
    )
    url = f"sqlite:///{tmp_path / 'w.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "omniq", "worker", "--url", url, "-q", "mail"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        workers = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                workers = httpx.get(f"http://127.0.0.1:{port}/api/workers", timeout=2).json()
                if workers:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        assert workers, "the dashboard did not show the worker"
        assert workers[0]["pid"] == proc.pid
        assert workers[0]["queues"] == ["mail"]
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert f"dashboard on http://127.0.0.1:{port}" in output
