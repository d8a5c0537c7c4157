"""Nothing OmniQ holds blocks or garbles interpreter exit (issue 14, item 2).

Each test runs a script the way a newcomer writes it, in a fresh interpreter, and asserts that it
ends by itself, names what it left open in one ResourceWarning, and prints no error from a closed
event loop. The subprocess timeout is a hang detector, not a speed measurement.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from tests.conftest import service_address

#: far above a normal exit (under a second); only a hang reaches it
HANG = 30

TASKS = """
import asyncio, time

async def add(x, y):
    return x + y

def sadd(x, y):
    return x + y

async def sleepy():
    await asyncio.sleep(60)
"""


def run_script(tmp_path: Path, body: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "exit_tasks.py").write_text(TASKS)
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(body))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIQ_")}
    env["OMNIQ_BASE_DIR"] = str(tmp_path / "base")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path.cwd()), env.get("PYTHONPATH")) if p)
    try:
        return subprocess.run(
            [sys.executable, "-W", "always::ResourceWarning", str(script), *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=HANG,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the script did not exit within {HANG}s; stderr:\n{exc.stderr!r}")


def assert_clean_exit(proc: subprocess.CompletedProcess[str], rc: int = 0) -> None:
    assert proc.returncode == rc, proc.stderr
    assert "Event loop is closed" not in proc.stderr, proc.stderr
    assert "Exception ignored" not in proc.stderr, proc.stderr
    assert "Exception in thread" not in proc.stderr, proc.stderr


def left_open_warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "OmniQ objects were left open" in line]


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'exit.db'}"


NEWCOMER_ASYNC = """
import asyncio, sys
from omniq import AsyncOmniQ
from omniq.backend import create_backend
from exit_tasks import add

async def main(url, project):
    oq = AsyncOmniQ.from_backend(create_backend(url=url, project_name=project))
    await oq.start_worker()
    tid = await oq.enqueue(add, args=(2, 3))
    assert await oq.get_result(tid, timeout=10) == 5
    await oq.stop_worker()
    print("ok")

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_an_async_app_never_closed_on_sqlite_exits_and_names_its_database(tmp_path: Path) -> None:
    proc = run_script(tmp_path, NEWCOMER_ASYNC, sqlite_url(tmp_path), "exit1")
    assert_clean_exit(proc)
    assert proc.stdout.strip() == "ok"
    (warning,) = left_open_warnings(proc.stderr)
    assert f"SQLite database '{tmp_path / 'exit.db'}'" in warning


def test_a_bare_sqlite_backend_never_closed_exits(tmp_path: Path) -> None:
    proc = run_script(
        tmp_path,
        """
        import asyncio, sys
        from omniq.backend import AsyncSQLiteBackend

        async def main(url):
            backend = AsyncSQLiteBackend(url=url, project_name="exit2")
            await backend.queue.connect()
            print("ok")

        asyncio.run(main(sys.argv[1]))
        """,
        sqlite_url(tmp_path),
    )
    assert_clean_exit(proc)
    assert len(left_open_warnings(proc.stderr)) == 1


def test_a_closed_app_exits_without_any_warning(tmp_path: Path) -> None:
    proc = run_script(
        tmp_path,
        """
        import asyncio, sys
        from omniq import AsyncOmniQ
        from omniq.backend import create_backend
        from exit_tasks import add

        async def main(url):
            async with AsyncOmniQ.from_backend(create_backend(url=url, project_name="x3")) as oq:
                await oq.start_worker()
                tid = await oq.enqueue(add, args=(1, 1))
                assert await oq.get_result(tid, timeout=10) == 2
            print("ok")

        asyncio.run(main(sys.argv[1]))
        """,
        sqlite_url(tmp_path),
    )
    assert_clean_exit(proc)
    assert "ResourceWarning" not in proc.stderr, proc.stderr


RAISE_WHILE_RUNNING = """
import asyncio, sys
from omniq import AsyncOmniQ
from omniq.backend import create_backend
from exit_tasks import sleepy

async def main(url, project):
    oq = AsyncOmniQ.from_backend(create_backend(url=url, project_name=project))
    await oq.start_worker()
    tid = await oq.enqueue(sleepy)
    for _ in range(200):
        task = await oq.get_task(tid)
        if task.status.value == "running":
            break
        await asyncio.sleep(0.05)
    print(tid, flush=True)
    raise RuntimeError("the script fails while its worker runs a task")

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_a_script_that_raises_while_its_worker_runs_hands_the_task_back(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    proc = run_script(tmp_path, RAISE_WHILE_RUNNING, url, "exit4")
    assert_clean_exit(proc, rc=1)
    assert "the script fails while its worker runs a task" in proc.stderr
    (warning,) = left_open_warnings(proc.stderr)
    assert "worker " in warning
    task_id = proc.stdout.strip()
    check = run_script(
        tmp_path,
        """
        import sys
        from omniq import OmniQ
        from omniq.backend import create_backend

        with OmniQ.from_backend(create_backend(url=sys.argv[1], project_name="exit4")) as oq:
            print(oq.get_task(sys.argv[2]).status.value)
        """,
        url,
        task_id,
    )
    assert_clean_exit(check)
    # handed back at exit (not left RUNNING until its lease runs out)
    assert check.stdout.strip() == "pending"


def test_a_sync_app_whose_worker_was_never_stopped_exits_cleanly(tmp_path: Path) -> None:
    proc = run_script(
        tmp_path,
        """
        import sys
        from omniq import OmniQ
        from omniq.backend import create_backend
        from exit_tasks import sadd

        oq = OmniQ.from_backend(create_backend(url=sys.argv[1], project_name="exit5"))
        oq.start_worker()
        tid = oq.enqueue(sadd, args=(2, 3))
        assert oq.get_result(tid, timeout=10) == 5
        print("ok")
        """,
        sqlite_url(tmp_path),
    )
    assert_clean_exit(proc)
    (warning,) = left_open_warnings(proc.stderr)
    assert "worker " in warning
    assert "SQLite database" in warning


def test_a_loop_closed_by_hand_reports_what_it_left_open(tmp_path: Path) -> None:
    proc = run_script(
        tmp_path,
        """
        import asyncio, sys
        from omniq.backend import AsyncSQLiteBackend

        loop = asyncio.new_event_loop()
        backend = AsyncSQLiteBackend(url=sys.argv[1], project_name="exit6")
        loop.run_until_complete(backend.queue.connect())
        loop.close()  # no shutdown_asyncgens: nothing can be closed on this loop any more
        print("ok")
        """,
        sqlite_url(tmp_path),
    )
    assert_clean_exit(proc)
    (warning,) = left_open_warnings(proc.stderr)
    assert "SQLite database" in warning
    assert "already closed" in warning


@pytest.mark.services("redis")
async def test_a_closed_redis_queue_leaves_no_connection_to_the_garbage_collector() -> None:
    """Its clients own the pools they are built on: closing the client disconnects the pool (a
    client given ``connection_pool=`` leaves it open, and each pooled socket warns "unclosed
    Connection" when collected)."""
    import gc
    import uuid
    import warnings

    from omniq.storage.redis import AsyncRedisQueue

    host, port = service_address("redis")
    queue = AsyncRedisQueue(
        url=f"redis://{host}:{port}/7", project_name=f"x-{uuid.uuid4().hex[:8]}"
    )
    await queue.connect()
    await queue.enqueue("tests.test_exit:run_script")
    assert await queue.dequeue(["default"], timeout=0.1) is not None
    assert await queue.dequeue(["default"], timeout=0.1) is None  # the blocking client waited
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await queue.close()
        del queue
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []


def _network_url(kind: str) -> str:
    host, port = service_address(kind)
    if kind == "redis":
        return f"redis://{host}:{port}/7"
    return f"postgresql://postgres@{host}:{port}/test"


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("redis", marks=pytest.mark.services("redis")),
        pytest.param("postgres", marks=pytest.mark.services("postgres")),
    ],
)
def test_network_backends_left_open_are_closed_at_exit(tmp_path: Path, kind: str) -> None:
    project = f"exit-{uuid.uuid4().hex[:8]}"
    proc = run_script(tmp_path, NEWCOMER_ASYNC, _network_url(kind), project)
    assert_clean_exit(proc)
    assert proc.stdout.strip() == "ok"
    assert "unclosed" not in proc.stderr, proc.stderr  # no socket left to the garbage collector
    assert len(left_open_warnings(proc.stderr)) == 1


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("redis", marks=pytest.mark.services("redis")),
        pytest.param("postgres", marks=pytest.mark.services("postgres")),
    ],
)
def test_network_worker_running_when_the_script_raises_hands_back(
    tmp_path: Path, kind: str
) -> None:
    project = f"exit-{uuid.uuid4().hex[:8]}"
    proc = run_script(tmp_path, RAISE_WHILE_RUNNING, _network_url(kind), project)
    assert_clean_exit(proc, rc=1)
    assert "unclosed" not in proc.stderr, proc.stderr
    assert len(left_open_warnings(proc.stderr)) == 1
