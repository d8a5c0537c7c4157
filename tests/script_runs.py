"""Running a user's script as a user runs it: ``python script.py`` in a fresh interpreter.

A script's own functions live in its ``__main__``, which no in-process test reproduces; these
helpers write the script to a folder, run it with this interpreter, and give each backend an
isolated place (a SQLite file, a Redis project in database 9, a PostgreSQL schema) that is removed
afterwards. ``OMNIQ_SECRET_KEY`` is never set: scripts must work without one.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import require_service, service_address

ROOT = Path(__file__).resolve().parent.parent
SCRIPT_BACKENDS = ("sqlite", "postgres", "redis")
REDIS_TEST_DB = 9


@dataclass
class ScriptPlace:
    """Where one script run keeps its data: ``url`` names it, ``project`` isolates it."""

    backend: str
    folder: Path
    url: str
    project: str
    env: dict[str, str] = field(default_factory=dict)

    def run(
        self, source: str, *args: str, name: str = "script.py", timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Runs ``source`` as ``python <name>`` in the place's folder; fails the test with the
        script's output when it exits non-zero."""
        done = self.run_unchecked(source, *args, name=name, timeout=timeout)
        if done.returncode != 0:
            pytest.fail(
                f"{name} on {self.backend} exited {done.returncode}\n--- stdout\n{done.stdout}"
                f"\n--- stderr\n{done.stderr}",
                pytrace=False,
            )
        return done

    def run_unchecked(
        self, source: str, *args: str, name: str = "script.py", timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        self.write(name, source)
        return subprocess.run(
            [sys.executable, name, *args],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def write(self, name: str, source: str) -> Path:
        path = self.folder / name
        path.write_text(textwrap.dedent(source).lstrip())
        return path


def script_env(folder: Path, project: str, **extra: str) -> dict[str, str]:
    """This environment minus every OMNIQ_* setting (a user's shell has none), with the package
    importable as installed, the embedded default kept inside ``folder``, and ``project`` as the
    default project name (so that examples that name none stay apart from every other run)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIQ_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    env["OMNIQ_BASE_DIR"] = str(folder / ".omniq")
    env["OMNIQ_PROJECT_NAME"] = project
    env["COLUMNS"] = "200"
    env.update(extra)
    return env


def open_place(backend: str, folder: Path) -> Iterator[ScriptPlace]:
    """Yields one isolated place on ``backend`` (skipping when its server is not running), and
    removes what the script stored there afterwards: the body of a test module's fixture."""
    project = f"script-{uuid.uuid4().hex[:10]}"
    if backend == "sqlite":
        url = f"sqlite:///{folder}/omniq.db"
        yield ScriptPlace(backend, folder, url, project, script_env(folder, project))
        return
    require_service(backend)
    host, port = service_address(backend)
    if backend == "redis":
        url = f"redis://{host}:{port}/{REDIS_TEST_DB}"
        try:
            yield ScriptPlace(backend, folder, url, project, script_env(folder, project))
        finally:
            asyncio.run(_unlink_redis_project(host, port, project))
        return
    schema = f"omniq_test_{uuid.uuid4().hex[:12]}"
    url = f"postgresql://postgres@{host}:{port}/test?schema={schema}"
    try:
        yield ScriptPlace(backend, folder, url, project, script_env(folder, project))
    finally:
        asyncio.run(_drop_schema(host, port, schema))


async def _unlink_redis_project(host: str, port: int, project: str) -> None:
    """The project's keys in database 9 and in database 0 (where a seed's ``RedisConfig(host=...,
    port=...)`` writes as written: its unique project name, from OMNIQ_PROJECT_NAME, isolates it)."""
    import redis.asyncio as aioredis

    for db in (REDIS_TEST_DB, 0):
        client = aioredis.Redis(host=host, port=port, db=db)
        try:
            keys = [k async for k in client.scan_iter(match=f"*{project}*", count=10_000)]
            if keys:
                await client.unlink(*keys)
        finally:
            await client.aclose()


async def _drop_schema(host: str, port: int, schema: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(host=host, port=port, user="postgres", database="test")
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()
