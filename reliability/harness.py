"""What every scenario shares: a private place on each backend, worker processes run exactly as
users run them (``python -m omniq worker``), and outcomes made of figures and pass criteria.

Scenarios never reuse another run's data: each gets a fresh SQLite file, PostgreSQL schema or Redis
project (hash tag), removed afterwards, so the suite can run beside other people's tests on the
shared servers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omniq import AsyncOmniQ
from omniq.backend import create_backend

#: the repository root: worker processes run here so ``reliability.tasks`` imports by name
ROOT = Path(__file__).resolve().parent.parent

BACKENDS = ("sqlite", "postgres", "redis")

#: where the shared servers listen; ``OMNIQ_TEST_<NAME>_PORT`` moves one, as for the tests
_DEFAULT_PORTS = {"postgres": 5432, "redis": 6379}


def service_port(name: str) -> int:
    override = os.environ.get(f"OMNIQ_TEST_{name.upper()}_PORT")
    return int(override) if override else _DEFAULT_PORTS[name]


# -- outcomes ------------------------------------------------------------------------------------
@dataclass
class Check:
    """One pass criterion, stated as a figure and what it must be."""

    name: str
    passed: bool
    detail: str


@dataclass
class Outcome:
    scenario: str
    backend: str
    figures: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0
    #: the figures that matter most, for the summary table
    headline: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def check(self, name: str, passed: bool, detail: Any = "") -> bool:
        self.checks.append(Check(name, bool(passed), str(detail)))
        return bool(passed)

    def expect_equal(self, name: str, value: Any, wanted: Any) -> bool:
        """A criterion ``name = wanted``, recorded with the measured value."""
        return self.check(f"{name} = {wanted!r}", value == wanted, f"measured {value!r}")

    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def render(self) -> str:
        lines = [f"== {self.scenario} on {self.backend}: {'PASS' if self.passed else 'FAIL'}"]
        lines += [f"   {k}: {v}" for k, v in self.figures.items()]
        lines += [
            f"   [{'ok' if c.passed else 'FAILED'}] {c.name} ({c.detail})" for c in self.checks
        ]
        lines.append(f"   ({self.seconds:.1f}s)")
        return "\n".join(lines)


# -- a private place on a backend ----------------------------------------------------------------
@dataclass
class Target:
    """One backend location for one run: ``url`` + ``project`` name it for the ``omniq`` CLI and
    for :func:`create_backend` alike."""

    backend: str
    url: str
    project: str
    workdir: Path
    #: PostgreSQL only: the schema holding the run's tables
    schema: str | None = None

    def app(self, **options: Any) -> AsyncOmniQ:
        return AsyncOmniQ.from_backend(
            create_backend(url=self.url, project_name=self.project, **options)
        )

    def worker_command(self, *extra: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "omniq",
            "worker",
            "--url",
            self.url,
            "--project",
            self.project,
            "--log-level",
            "ERROR",
            # the scenarios' task functions: a worker runs only functions it was told about
            "--include",
            "reliability.tasks",
            *extra,
        ]


def _run_id() -> str:
    return uuid.uuid4().hex[:10]


@contextlib.asynccontextmanager
async def target(
    backend: str, *, host: str = "127.0.0.1", port: int | None = None
) -> AsyncIterator[Target]:
    """A fresh, empty place on ``backend`` (a server on ``host:port`` for the network ones),
    removed afterwards whatever happens."""
    run = _run_id()
    workdir = Path(tempfile.mkdtemp(prefix=f"omniq-rel-{backend}-"))
    if backend == "sqlite":
        yield Target(backend, f"sqlite:///{workdir}/queue.db", f"rel-{run}", workdir)
    elif backend == "postgres":
        schema = f"omniq_rel_{run}"
        port = port or service_port("postgres")
        url = f"postgresql://postgres@{host}:{port}/test?schema={schema}"
        try:
            yield Target(backend, url, f"rel-{run}", workdir, schema=schema)
        finally:
            with contextlib.suppress(Exception):
                await drop_schema(host, port, schema)
    elif backend == "redis":
        port = port or service_port("redis")
        project = f"rel-{run}"
        try:
            yield Target(backend, f"redis://{host}:{port}/0", project, workdir)
        finally:
            with contextlib.suppress(Exception):
                await unlink_project(host, port, project)
    else:
        raise ValueError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    _remove_tree(workdir)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


async def drop_schema(host: str, port: int, schema: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(host=host, port=port, user="postgres", database="test")
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def unlink_project(host: str, port: int, project: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis(host=host, port=port)
    try:
        keys = [k async for k in client.scan_iter(match=f"*{{{project}}}*", count=10_000)]
        if keys:
            await client.unlink(*keys)
    finally:
        await client.aclose()


# -- worker processes ----------------------------------------------------------------------------
class WorkerProcess:
    """``python -m omniq worker`` in a process of its own, as a supervisor would run it."""

    def __init__(
        self, command: Sequence[str], log_dir: Path, env: dict[str, str] | None = None
    ) -> None:
        self.command = list(command)
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"worker-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in wait()
        self.process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C of the harness is not also delivered to workers
        )
        self.pid = self.process.pid
        self.killed = False

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def ready(self) -> bool:
        """Whether the worker printed its banner: it is connected and serving, and its signal
        handlers are installed (a SIGTERM before that ends the interpreter mid-import)."""
        return "omniq worker " in self.output()

    def wait_ready(self, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready():
                return True
            if not self.alive:
                return False
            time.sleep(0.05)
        return False

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is handed back, leases are all that is left."""
        self.killed = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.wait(10)

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, the graceful stop, once the worker is serving; SIGKILL if it is not gone
        within ``timeout``."""
        self.wait_ready(timeout)
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
        code = self.wait(timeout)
        if code is None:
            self.kill()
        return code

    def wait(self, timeout: float) -> int | None:
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._log.close()
        return code

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def workers_running(
    t: Target, count: int, *extra: str, env: dict[str, str] | None = None
) -> Iterator[list[WorkerProcess]]:
    """``count`` worker processes on ``t``; every one still running at the end is stopped (and
    killed if it will not stop)."""
    procs = [WorkerProcess(t.worker_command(*extra), t.workdir / "logs", env) for _ in range(count)]
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.alive:
                proc.stop(10)


def records_dir(t: Target, name: str = "executions") -> str:
    path = t.workdir / name
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o777)
    return str(path)


async def status_counts(app: AsyncOmniQ, queue: str = "default") -> dict[str, int]:
    """``{"success": n, ...}`` for one queue, the store's own view."""
    stats = await app.task_queue.stats()
    counts: dict[str, int] = dict(stats.get(queue, {}))
    return counts


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.2f}%" if whole else "n/a"


def pid_of_worker_id(worker_id: str | None) -> int | None:
    """Worker ids are ``host:pid:random`` (``omniq.workers.worker``)."""
    if not worker_id:
        return None
    parts = worker_id.split(":")
    try:
        return int(parts[-2])
    except (IndexError, ValueError):
        return None
