"""Runs OmniQ and its peers on the same workload, each library in its own virtualenv.

Every contender is a driver script in this folder (``<name>_driver.py``, command line in
``_driver.py``) run by its own interpreter: a peer's from ``.bench/venvs/<peer>`` (made by
``scripts/bench-setup``), OmniQ's from the project environment. A measurement of one contender
is a few phases, each on fresh storage (Redis DB flushed, PostgreSQL database recreated, SQLite in
a new temporary directory):

1. enqueue N tasks one by one (timed, in the driver), then drain them with 1 worker process;
2. enqueue N tasks in bulk (timed where the library has a bulk or concurrent API), then drain
   them with 2 worker processes;
3. enqueue -> start latency at light load: one worker process, one task every 5 ms (``latency``).

Drain is the completion rate from the first completed task to the last (PERFORMANCE.md: steady
state, process start-up not counted), read from the records every task appends to one file
(``record.py``). The first task of each worker process waits at a start gate until all worker
processes have started, so that "2 processes" measures two. Workers are stopped by SIGTERM to
their process group once all N are recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from benchmarks.peers.record import DONE_FILE_ENV, GATE_ENV, RECORD, checked_in, read

PEERS_DIR = Path(__file__).resolve().parent
REPO_ROOT = PEERS_DIR.parent.parent
DEFAULT_VENVS = REPO_ROOT / ".bench" / "venvs"

BROKERS = ("redis", "postgres", "sqlite", "nats")

#: seconds after the workers' start at which the start gate opens even if not every process has
#: checked in. It bounds how long a checked-in task is held, so it stays below the shortest
#: default job timeout among the peers (SAQ's 10 s), past which a held task would be retried.
GATE_TIMEOUT = 9.0

#: paced tasks at the start of the latency phase that are not counted (connection pools and
#: caches warming up on both sides)
LATENCY_WARMUP = 10


class BenchError(RuntimeError):
    """A contender could not be measured; the message says which and why (with its log tail)."""


@dataclass(frozen=True)
class Contender:
    """One library on one broker, in one configuration.

    ``venv`` is the peer virtualenv's name (``None`` for OmniQ, which runs in the project's own
    environment); ``dist`` is the distribution whose version is reported; ``variant`` is passed
    to the driver (a worker class or worker type)."""

    key: str
    label: str
    broker: str
    driver: str
    venv: str | None
    dist: str
    variant: str = ""

    @property
    def omniq(self) -> bool:
        return self.venv is None


#: the peers of issue 9, configured as PERFORMANCE.md measured them (each driver's docstring
#: says how)
PEERS: tuple[Contender, ...] = (
    Contender("taskiq", "taskiq (stream)", "redis", "taskiq_driver.py", "taskiq", "taskiq"),
    Contender("dramatiq", "Dramatiq", "redis", "dramatiq_driver.py", "dramatiq", "dramatiq"),
    Contender("huey-redis", "Huey", "redis", "huey_driver.py", "huey", "huey"),
    Contender("saq-redis", "SAQ", "redis", "saq_driver.py", "saq", "saq"),
    Contender("celery", "Celery (prefork)", "redis", "celery_driver.py", "celery", "celery"),
    Contender("rq-simple", "RQ (SimpleWorker)", "redis", "rq_driver.py", "rq", "rq", "simple"),
    Contender("rq", "RQ (forking Worker)", "redis", "rq_driver.py", "rq", "rq", "fork"),
    Contender("arq", "arq", "redis", "arq_driver.py", "arq", "arq"),
    Contender("pgqueuer", "pgqueuer", "postgres", "pgqueuer_driver.py", "pgqueuer", "pgqueuer"),
    Contender("saq-postgres", "SAQ", "postgres", "saq_driver.py", "saq", "saq"),
    Contender(
        "procrastinate",
        "procrastinate",
        "postgres",
        "procrastinate_driver.py",
        "procrastinate",
        "procrastinate",
    ),
    Contender("huey-sqlite", "Huey", "sqlite", "huey_driver.py", "huey", "huey"),
    Contender(
        "taskiq-nats",
        "taskiq-nats (pull)",
        "nats",
        "taskiq_nats_driver.py",
        "taskiq-nats",
        "taskiq-nats",
    ),
)

#: OmniQ worker types measured unless told otherwise (``async`` is the default type and the one
#: ratios are computed against)
DEFAULT_OMNIQ_TYPES = ("async",)


def omniq_contenders(
    worker_types: tuple[str, ...], concurrency: int | None = None
) -> tuple[Contender, ...]:
    """OmniQ on every broker with each worker type; ``concurrency`` overrides the worker's
    default (the key and label then say so, e.g. ``omniq-redis-async-c100``)."""
    suffix, variant, label = "", "", ""
    if concurrency is not None:
        suffix, variant, label = (
            f"-c{concurrency}",
            f":{concurrency}",
            f", concurrency {concurrency}",
        )
    return tuple(
        Contender(
            f"omniq-{broker}-{wtype}{suffix}",
            f"OmniQ ({wtype}{label})",
            broker,
            "omniq_driver.py",
            None,
            "omniq-tasks",
            wtype + variant,
        )
        for broker in BROKERS
        for wtype in worker_types
    )


@dataclass
class Services:
    """Where the servers are. Both are dedicated to the benchmark and wiped between phases: the
    Redis URL must name its own DB number, the PostgreSQL database name must contain "bench"."""

    redis_url: str = "redis://127.0.0.1:6379/15"
    pg_dsn: str = "postgresql://postgres@127.0.0.1:5432/omniq_bench"
    #: NATS: the benchmark's streams and buckets are the ones named ``*bench*`` (both drivers
    #: name theirs so), deleted before and after each phase
    nats_url: str = "nats://127.0.0.1:4222"
    tmp_root: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))

    def __post_init__(self) -> None:
        db = urlsplit(self.redis_url).path.strip("/")
        if not db.isdigit() or db == "0":
            raise BenchError(
                f"--redis-url {self.redis_url!r} must name a dedicated DB number other than 0 "
                "(e.g. redis://127.0.0.1:6379/15): it is flushed before and after each phase"
            )
        if "bench" not in self.pg_database:
            raise BenchError(
                f"--pg-dsn {self.pg_dsn!r}: the database name must contain 'bench' "
                "(e.g. .../omniq_bench): it is dropped and recreated before each phase"
            )

    @property
    def pg_database(self) -> str:
        return urlsplit(self.pg_dsn).path.strip("/")

    def flush_redis(self) -> None:
        import redis

        def flush() -> None:
            client = redis.Redis.from_url(self.redis_url)
            try:
                client.flushdb()
            finally:
                client.close()

        _while_restarting(flush, "Redis")

    def wipe_nats(self) -> None:
        """Deletes the benchmark's streams (OmniQ's project ``bench`` with its KV buckets, and
        taskiq-nats's stream), leaving everything else on the server alone."""
        import nats

        async def wipe() -> None:
            nc = await nats.connect(self.nats_url, max_reconnect_attempts=1)
            try:
                js = nc.jetstream()
                for name in await js.streams_info():
                    stream = name.config.name or ""
                    if "bench" in stream.lower():
                        await js.delete_stream(stream)
            finally:
                await nc.close()

        _while_restarting(lambda: asyncio.run(wipe()), "NATS")

    def recreate_postgres(self) -> None:
        """Drops and recreates the benchmark database, so that each library's schema (and any
        listener a killed worker left) is gone. ``WITH (FORCE)`` ends leftover sessions."""
        name = self._quoted_database()
        self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}")

    def drop_postgres(self) -> None:
        self._admin(f"DROP DATABASE IF EXISTS {self._quoted_database()} WITH (FORCE)")

    def _quoted_database(self) -> str:
        return '"' + self.pg_database.replace('"', '""') + '"'

    def _admin(self, *statements: str) -> None:
        """Runs ``statements`` on the server's ``postgres`` database (a database cannot be
        dropped from a connection to itself)."""
        import asyncpg  # type: ignore[import-untyped]

        maintenance = urlunsplit(urlsplit(self.pg_dsn)._replace(path="/postgres"))

        async def run() -> None:
            conn = await asyncpg.connect(maintenance)
            try:
                for statement in statements:
                    await conn.execute(statement)
            finally:
                await conn.close()

        _while_restarting(lambda: asyncio.run(run()), "PostgreSQL")

    @contextlib.contextmanager
    def fresh(self, broker: str) -> Iterator[Path]:
        """Fresh storage for one phase; yields the phase's scratch directory (SQLite files, the
        completion file), removed afterwards together with the broker's data."""
        scratch = Path(tempfile.mkdtemp(prefix="omniq-bench-", dir=self.tmp_root))
        try:
            if broker == "redis":
                self.flush_redis()
            elif broker == "postgres":
                self.recreate_postgres()
            elif broker == "nats":
                self.wipe_nats()
            yield scratch
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            if broker == "redis":
                self.flush_redis()
            elif broker == "nats":
                self.wipe_nats()

    def cleanup(self) -> None:
        """What a whole run leaves behind on the servers: nothing."""
        self.flush_redis()
        self.drop_postgres()


@dataclass
class Runner:
    services: Services
    n: int
    procs: tuple[int, ...] = (1, 2)
    venvs: Path = DEFAULT_VENVS
    log_dir: Path = REPO_ROOT / ".bench" / "logs"
    drain_timeout: float | None = None
    #: paced tasks in the latency phase (0: no latency phase) and the ms between two of them
    latency_n: int = 500
    interval_ms: float = 5.0

    def python(self, contender: Contender) -> Path | None:
        """The interpreter that runs ``contender``; ``None`` when its venv is not set up."""
        if contender.venv is None:
            return Path(sys.executable)
        path = self.venvs / contender.venv / "bin" / "python"
        return path if path.exists() else None

    def version(self, contender: Contender) -> str:
        python = self.python(contender)
        if python is None:
            return "not installed"
        out = subprocess.run(
            [
                str(python),
                "-c",
                f"import importlib.metadata as m; print(m.version({contender.dist!r}))",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return out.stdout.strip() or "unknown"

    def env(self, contender: Contender, scratch: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        paths = [str(PEERS_DIR)] if contender.venv else [str(REPO_ROOT), str(PEERS_DIR)]
        env.update(
            PYTHONPATH=os.pathsep.join(paths),
            PYTHONUNBUFFERED="1",
            OMNIQ_BENCH_REDIS_URL=self.services.redis_url,
            OMNIQ_BENCH_NATS_URL=self.services.nats_url,
            OMNIQ_BENCH_PG_DSN=self.services.pg_dsn,
            OMNIQ_BENCH_DIR=str(scratch),
            OMNIQ_BENCH_BACKEND=contender.broker,
        )
        env[DONE_FILE_ENV] = str(scratch / "done.bin")
        return env

    def command(self, contender: Contender, *args: str) -> list[str]:
        python = self.python(contender)
        if python is None:
            raise BenchError(
                f"{contender.key}: no virtualenv at {self.venvs / str(contender.venv)} "
                f"(run scripts/bench-setup {contender.venv})"
            )
        return [
            str(python),
            str(PEERS_DIR / contender.driver),
            *args,
            "--backend",
            contender.broker,
            "--variant",
            contender.variant,
        ]

    def enqueue(
        self, contender: Contender, mode: str, env: dict[str, str], n: int | None = None
    ) -> float | None:
        """Runs the driver's ``enqueue`` (N tasks by default); its rate, or ``None``."""
        count = self.n if n is None else n
        cmd = self.command(
            contender,
            "enqueue",
            "--mode",
            mode,
            "-n",
            str(count),
            "--interval",
            str(self.interval_ms),
        )
        budget = 120 + count / 50 + (count * self.interval_ms / 1000 if mode == "paced" else 0)
        try:
            out = subprocess.run(
                cmd, env=env, cwd=PEERS_DIR, capture_output=True, text=True, timeout=budget
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"{contender.key}: enqueue --mode {mode} timed out") from exc
        lines = out.stdout.strip().splitlines()
        if out.returncode != 0 or not lines:
            raise BenchError(
                f"{contender.key}: enqueue --mode {mode} failed (exit {out.returncode}): "
                + _tail(out.stderr or out.stdout)
            )
        rate = json.loads(lines[-1])["per_s"]
        return None if rate is None else float(rate)

    def _spawn(
        self, contender: Contender, procs: int, env: dict[str, str], tag: str
    ) -> list[tuple[subprocess.Popen[bytes], Path]]:
        """Starts ``procs`` worker processes, each in a session of its own (so that SIGTERM to
        its group reaches pool children too), logging to ``.bench/logs``."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        cmd = self.command(contender, "worker")
        workers = []
        try:
            for i in range(procs):
                log = self.log_dir / f"{contender.key}-{tag}-w{i}.log"
                with log.open("wb") as fh:
                    proc = subprocess.Popen(
                        cmd,
                        env=env,
                        cwd=PEERS_DIR,
                        stdout=fh,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                workers.append((proc, log))
        except BaseException:
            _stop(w for w, _ in workers)
            raise
        return workers

    def _wait_for(
        self,
        contender: Contender,
        done_file: Path,
        count: int,
        workers: list[tuple[subprocess.Popen[bytes], Path]],
        timeout: float,
        tick: Callable[[], None] | None = None,
    ) -> None:
        """Polls ``done_file`` until it holds ``count`` records; a timeout, or every worker
        having exited, is a ``BenchError`` with the first worker's log tail."""
        deadline = time.monotonic() + timeout
        target = count * RECORD.size
        while done_file.stat().st_size < target:
            if tick is not None:
                tick()
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{contender.key}: {done_file.stat().st_size // RECORD.size} of {count} "
                    f"tasks done after {timeout:.0f}s; worker log: "
                    + _tail(workers[0][1].read_text(errors="replace"))
                )
            if all(w.poll() is not None for w, _ in workers):
                raise BenchError(
                    f"{contender.key}: every worker exited (codes "
                    f"{[w.returncode for w, _ in workers]}) before the tasks were done: "
                    + _tail(workers[0][1].read_text(errors="replace"))
                )
            time.sleep(0.002)

    def drain(self, contender: Contender, procs: int, env: dict[str, str]) -> dict[str, Any]:
        """Starts ``procs`` worker processes on the N enqueued tasks, opens the start gate once
        all of them have checked in (``record.py``; or after ``GATE_TIMEOUT`` seconds, noted as
        ``gate_timed_out``), and returns the drain rate (first to last completion), how many
        completions were recorded and by how many processes, and the seconds from start to the
        gate opening."""
        done_file = Path(env[DONE_FILE_ENV])
        done_file.touch()
        gate = done_file.with_name("gate")
        env = {**env, GATE_ENV: str(gate)}
        started = time.monotonic()
        opened_after: list[float] = []

        def open_gate_when_all_in() -> None:
            if opened_after:
                return
            waited = time.monotonic() - started
            if len(checked_in(str(gate))) >= procs or waited > GATE_TIMEOUT:
                gate.touch()
                opened_after.append(waited)

        workers = self._spawn(contender, procs, env, f"p{procs}")
        peak_rss: float | None = None
        try:
            self._wait_for(
                contender,
                done_file,
                self.n,
                workers,
                self.drain_timeout or 30 + self.n / 25,
                open_gate_when_all_in,
            )
            # read before stopping: the kernel forgets a process's peak when it exits
            peak_rss = max(peak_rss_mb(w.pid) for w, _ in workers)
        finally:
            _stop(w for w, _ in workers)
        records = read(str(done_file))
        times = sorted(t for t, _, _ in records)
        span = (times[-1] - times[0]) / 1e9
        return {
            "rate": (len(times) - 1) / span if span > 0 else None,
            "completed": len(records),
            "processes": len({pid for _, pid, _ in records}),
            "startup_s": opened_after[0] if opened_after else None,
            "gate_timed_out": bool(opened_after) and opened_after[0] > GATE_TIMEOUT,
            "peak_rss_mb": peak_rss,
        }

    def latency(self, contender: Contender) -> dict[str, Any]:
        """Enqueue -> start latency at light load: one warm-up task, one worker process (the
        warm-up's completion says it is serving), then ``latency_n`` tasks one every
        ``interval_ms``, each carrying its enqueue time. The first ``LATENCY_WARMUP`` paced tasks
        are not counted. Returns p50/p99/max in milliseconds."""
        with self.services.fresh(contender.broker) as scratch:
            env = self.env(contender, scratch)
            done_file = Path(env[DONE_FILE_ENV])
            done_file.touch()
            # the warm-up (argument 0) goes first: a driver's enqueue also installs the
            # library's schema, which some workers (pgqueuer) insist on finding at start
            self.enqueue(contender, "single", env, n=1)
            workers = self._spawn(contender, 1, env, "latency")
            try:
                self._wait_for(contender, done_file, 1, workers, 60)
                self.enqueue(contender, "paced", env, n=self.latency_n)
                self._wait_for(contender, done_file, 1 + self.latency_n, workers, 60)
            finally:
                _stop(w for w, _ in workers)
            records = read(str(done_file))
        paced = sorted((sent, done) for done, _, sent in records if sent != 0)
        ms = sorted((done - sent) / 1e6 for sent, done in paced[LATENCY_WARMUP:])
        if not ms:
            raise BenchError(f"{contender.key}: no paced task was recorded")
        return {
            "latency_p50_ms": _percentile(ms, 0.50),
            "latency_p99_ms": _percentile(ms, 0.99),
            "latency_max_ms": ms[-1],
            "latency_count": len(ms),
        }

    def measure(self, contender: Contender) -> dict[str, Any]:
        """One run of ``contender``: every phase (see module docstring). Metrics:
        ``enqueue_single``, ``enqueue_bulk`` (``None`` without a bulk API), ``drain_<procs>``,
        ``latency_p50_ms``/``latency_p99_ms`` (unless ``latency_n`` is 0), plus per-phase
        details under ``details``."""
        out: dict[str, Any] = {"details": {}}
        phases = max(2, len(self.procs))
        for phase in range(phases):
            mode = ("single", "bulk")[phase % 2]
            with self.services.fresh(contender.broker) as scratch:
                env = self.env(contender, scratch)
                rate = self.enqueue(contender, mode, env)
                out.setdefault(f"enqueue_{mode}", rate)
                if phase < len(self.procs):
                    procs = self.procs[phase]
                    drained = self.drain(contender, procs, env)
                    if drained["completed"] != self.n:
                        raise BenchError(
                            f"{contender.key}: {drained['completed']} completions recorded for "
                            f"{self.n} tasks with {procs} worker process(es)"
                        )
                    out[f"drain_{procs}"] = drained["rate"]
                    out["details"][f"drain_{procs}"] = drained
                    if procs == 1 and drained["peak_rss_mb"] is not None:
                        out["peak_rss_mb"] = drained["peak_rss_mb"]
        if self.latency_n:
            lat = self.latency(contender)
            out["latency_p50_ms"] = lat["latency_p50_ms"]
            out["latency_p99_ms"] = lat["latency_p99_ms"]
            out["details"]["latency"] = lat
        return out


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of one worker: the process whose group ``pid`` leads plus
    every process in that group (pool children count: they are part of what the worker costs),
    in MiB. Linux only; 0.0 where /proc cannot tell."""
    total_kb = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            # the fields after the command name, which is in parentheses and may hold spaces
            pgrp = int(stat.rpartition(")")[2].split()[2])
            if pgrp != pid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total_kb += int(line.split()[1])
                    break
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not ours to read
    return total_kb / 1024


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _stop(workers: Iterator[subprocess.Popen[bytes]] | Any) -> None:
    """SIGTERM to each worker's process group (the library's graceful stop, which reaches pool
    children too), then SIGKILL to whatever is left after a grace period."""
    workers = list(workers)
    for w in workers:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(w.pid, signal.SIGTERM)
    deadline = time.monotonic() + 3  # all tasks are done: a slow graceful stop costs only time
    for w in workers:
        with contextlib.suppress(subprocess.TimeoutExpired):
            w.wait(timeout=max(0.1, deadline - time.monotonic()))
    for w in workers:
        # the group may outlive its leader (a pool child): kill what is left either way
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(w.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            w.wait(timeout=5)


def _while_restarting(action: Callable[[], None], server: str, patience: float = 30.0) -> None:
    """Runs ``action``, retrying for ``patience`` seconds while the server refuses connections:
    the machine is shared, and other people's fault-injection runs restart Redis and PostgreSQL.
    """
    deadline = time.monotonic() + patience
    while True:
        try:
            action()
            return
        # any error: redis-py and asyncpg each have their own classes for refused connections
        # and servers starting up; a real mistake (a wrong DSN) fails after ``patience``
        except Exception as exc:
            if time.monotonic() > deadline:
                raise BenchError(f"{server} failed for {patience:.0f}s: {exc}") from exc
        time.sleep(0.5)


def _tail(text: str, lines: int = 6) -> str:
    return " | ".join(text.strip().splitlines()[-lines:]) or "(no output)"
