"""Private Redis and PostgreSQL servers on free ports, for scenarios that restart them.

The shared servers on 6379/5432 serve everyone's tests, so a restart scenario never touches them:
it starts its own server in a temporary directory, restarts that, and deletes it afterwards.
"""

from __future__ import annotations

import contextlib
import glob
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class PrivateRedis:
    """``redis-server --port <free> --save "" --appendonly no --dir <tmp>``: nothing on disk
    except what ``SHUTDOWN SAVE`` writes when :meth:`restart` asks it to keep the data."""

    def __init__(self) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not on PATH")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="omniq-rel-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.dir / "redis.log", "ab")  # noqa: SIM115 - owned by the server process
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        _wait_port(self.port)

    def stop(self, save: bool) -> None:
        """``SHUTDOWN SAVE`` (the data is written to dump.rdb and loaded by the next start) or
        ``SHUTDOWN NOSAVE``."""
        subprocess.run(
            ["redis-cli", "-p", str(self.port), "shutdown", "save" if save else "nosave"],
            capture_output=True,
            timeout=30,
        )
        if self.process is not None:
            self.process.wait(30)

    def restart(self, mode: str = "shutdown-save", down: float = 0.0) -> float:
        """Graceful restart keeping the data (``SHUTDOWN SAVE``), ``down`` seconds away;
        returns the seconds the server was away."""
        if mode != "shutdown-save":
            raise ValueError(f"redis restart mode {mode!r}: only 'shutdown-save' keeps the data")
        began = time.monotonic()
        self.stop(save=True)
        time.sleep(down)
        self.start()
        return time.monotonic() - began

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.stop(save=False)
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivatePostgres:
    """An ``initdb`` cluster in a temporary directory, run by the ``postgres`` user with
    ``pg_ctl -o "-p <free> -k <dir>"`` (trust authentication, as the test server)."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not found:
            raise RuntimeError("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
        self.bin = Path(found[-1]).parent
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="omniq-rel-pg-"))
        self.data = self.dir / "data"
        shutil.chown(self.dir, "postgres", "postgres")

    def _as_postgres(self, *command: str) -> None:
        done = subprocess.run(
            ["runuser", "-u", "postgres", "--", *command], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}")

    def _options(self) -> str:
        return f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=on"

    def start(self) -> None:
        if not self.data.exists():
            self._as_postgres(
                str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"
            )
        self._as_postgres(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", self._options(),
            "-l", str(self.dir / "pg.log"), "-w", "start",
        )  # fmt: skip
        _wait_port(self.port)

    def restart(self, mode: str = "fast", down: float = 0.0) -> float:
        """``pg_ctl stop -m fast`` (clean shutdown) or ``-m immediate`` (no shutdown checkpoint:
        the next start runs crash recovery from the WAL), ``down`` seconds away, then a start.
        Returns the seconds away."""
        began = time.monotonic()
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
        time.sleep(down)
        self.start()
        return time.monotonic() - began

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._as_postgres(
                str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"
            )
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def private_server(kind: str) -> Iterator[PrivateRedis | PrivatePostgres]:
    server: PrivateRedis | PrivatePostgres = (
        PrivateRedis() if kind == "redis" else PrivatePostgres()
    )
    try:
        server.start()
        yield server
    finally:
        server.close()


__all__ = ["PrivatePostgres", "PrivateRedis", "free_port", "private_server"]
