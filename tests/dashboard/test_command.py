"""``omniq dashboard``: refuses an open dashboard beyond loopback; serves until SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from omniq.cli import app as typer_app
from omniq.config import get_settings, reload_settings
from omniq.dashboard.server import DEFAULT_PORT, default_port
from tests.dashboard.test_beside_worker import ROOT, free_port

runner = CliRunner()


def test_beyond_loopback_without_a_credential_is_refused(tmp_path: Path) -> None:
    out = runner.invoke(
        typer_app,
        ["dashboard", "--url", f"sqlite:///{tmp_path / 'x.db'}", "--host", "0.0.0.0"],
        env={"OMNIQ_DASHBOARD_TOKEN": ""},
    )
    assert out.exit_code == 2
    assert "'0.0.0.0'" in out.output
    assert "--token" in out.output


def test_the_command_and_the_worker_default_to_one_port(monkeypatch: Any) -> None:
    try:
        monkeypatch.delenv("OMNIQ_DASHBOARD_PORT", raising=False)
        reload_settings()
        assert default_port() == DEFAULT_PORT == get_settings().DASHBOARD_PORT == 8765
        monkeypatch.setenv("OMNIQ_DASHBOARD_PORT", "9123")
        reload_settings()
        assert default_port() == get_settings().DASHBOARD_PORT == 9123
    finally:
        monkeypatch.undo()
        reload_settings()


def test_a_short_token_is_refused_naming_the_rule(tmp_path: Path) -> None:
    out = runner.invoke(
        typer_app, ["dashboard", "--url", f"sqlite:///{tmp_path / 'x.db'}", "--token", "abc"]
    )
    assert out.exit_code == 2
    assert "16 characters" in out.output


def test_the_dashboard_serves_until_sigint(tmp_path: Path) -> None:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "omniq",
            "dashboard",
            "--url",
            f"sqlite:///{tmp_path / 'x.db'}",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        answer = None
        deadline = time.monotonic() + 30
        while answer is None and time.monotonic() < deadline:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/queues", timeout=2)
            except httpx.TransportError:
                time.sleep(0.1)
        assert answer is not None, "the dashboard did not answer"
        assert answer.status_code == 200
        assert answer.json() == {}
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert f"http://127.0.0.1:{port}" in output
    # the store did not exist: said, since a mistyped path would show an empty one silently
    assert "did not exist: it was created empty" in output


def test_an_unreachable_backend_is_one_line_and_exit_status_1() -> None:
    backend = f"postgres://postgres@127.0.0.1:{free_port()}/test"
    out = runner.invoke(
        typer_app,
        ["dashboard", "--url", backend, "--port", str(free_port())],
        env={"COLUMNS": "200"},
    )
    assert out.exit_code == 1, out.output
    assert "BackendUnavailable" in out.output
    assert backend in out.output
    assert "Traceback" not in out.output
    assert "Ctrl-C to stop" not in out.output  # it never served
