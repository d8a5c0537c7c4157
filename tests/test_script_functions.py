"""Functions travel by reference, a script's own (``__main__``) functions included (issue: the
first hour, item 1). Without OMNIQ_SECRET_KEY a network backend refuses dill, so everything a
newcomer's script sends must be msgpack: here on SQLite, PostgreSQL and Redis, as real scripts."""

from __future__ import annotations

import asyncio
import functools
import signal
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from omniq import AsyncOmniQ, TaskStatus
from omniq.backend import create_backend
from omniq.exceptions import FunctionNotFound
from omniq.models.schedule import Schedule
from omniq.models.task import Task
from omniq.registry import TaskRegistry, registry
from omniq.serialization import Serializer
from tests import tasks_fixture
from tests.script_runs import SCRIPT_BACKENDS, ScriptPlace, open_place


@pytest.fixture(params=SCRIPT_BACKENDS)
def script_place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ScriptPlace]:
    yield from open_place(request.param, tmp_path)


# -- references -------------------------------------------------------------------------------


@pytest.fixture
def fake_main(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A ``__main__`` module holding ``add``, as a user's script does."""
    module = types.ModuleType("__main__")
    exec("def add(x, y):\n    return x + y\n", module.__dict__)
    monkeypatch.setitem(sys.modules, "__main__", module)
    return module


def test_a_script_function_is_referenced_as_main_and_travels_as_msgpack(
    fake_main: types.ModuleType,
) -> None:
    task = Task(func=fake_main.add, args=(2, 3))

    assert (task.func, task.func_obj) == ("__main__:add", None)
    payload = Serializer(local=False).encode_task(task)
    assert Serializer(local=False).format_of(payload) == "msgpack"
    assert registry.resolve(Serializer(local=False).decode_task(payload).func) is fake_main.add


def test_a_script_function_resolves_against_the_module_the_worker_was_given(
    fake_main: types.ModuleType,
) -> None:
    script = types.ModuleType("first")
    exec("def add(x, y):\n    return 100 + x + y\n", script.__dict__)
    reg = TaskRegistry()

    with reg.main_module(script):
        assert reg.resolve("__main__:add") is script.add
    assert reg.resolve("__main__:add") is fake_main.add  # back to its own __main__


def test_a_worker_not_told_the_script_fails_the_reference_saying_what_to_do() -> None:
    reg = TaskRegistry()
    reg.set_main_module(None)

    with pytest.raises(FunctionNotFound) as excinfo:
        reg.resolve("__main__:add")

    message = str(excinfo.value)
    assert "'__main__:add'" in message
    assert "--app" in message
    assert "move the function into a module" in message


def test_a_script_function_the_worker_module_lacks_is_named_with_the_hint(
    fake_main: types.ModuleType,
) -> None:
    with pytest.raises(FunctionNotFound, match=r"no attribute 'send'.*--app"):
        TaskRegistry().resolve("__main__:send")


def test_an_unknown_bare_name_suggests_app() -> None:
    with pytest.raises(FunctionNotFound, match=r"'send_report'.*--app"):
        TaskRegistry().resolve("send_report")


@pytest.mark.parametrize(
    "func",
    [
        pytest.param(lambda x: x, id="lambda"),
        pytest.param(functools.partial(tasks_fixture.add, 1), id="partial"),
    ],
)
def test_a_callable_without_a_name_has_no_reference_and_keeps_travelling_by_value(
    func: Any,
) -> None:
    assert registry.reference(func) is None
    task = Task(func=func)
    assert task.func_obj is func
    with pytest.raises(Exception, match="needs dill"):
        Serializer(local=False).encode_task(task)


def test_a_closure_has_no_reference() -> None:
    offset = 3

    def shifted(x: int) -> int:
        return x + offset

    assert registry.reference(shifted) is None


def test_an_importable_function_task_and_schedule_are_msgpack_on_a_network_backend() -> None:
    serializer = Serializer(local=False)
    task = Task(func=tasks_fixture.add, args=(1, (2, 3)))  # type: ignore[arg-type]
    schedule = Schedule(func=tasks_fixture.add, interval=5.0, task_options={"retry_on": ()})  # type: ignore[arg-type]

    assert serializer.format_of(serializer.encode_task(task)) == "msgpack"
    assert serializer.format_of(serializer.encode_schedule(schedule)) == "msgpack"


@pytest.mark.services("redis")
async def test_schedule_on_redis_without_a_secret_key_is_stored() -> None:
    from tests.conftest import service_address
    from tests.script_runs import REDIS_TEST_DB, _unlink_redis_project

    host, port = service_address("redis")
    project = "schedule-nokey"
    backend = create_backend(url=f"redis://{host}:{port}/{REDIS_TEST_DB}", project_name=project)
    try:
        async with AsyncOmniQ.from_backend(backend) as oq:
            assert not oq.task_queue.serializer.signed
            schedule_id = await oq.schedule(tasks_fixture.add, args=(1, 2), interval=60)
            stored = await oq.get_schedule(schedule_id)
            assert stored is not None
            assert (stored.func, stored.task_options["retry_on"]) == ("tests.tasks_fixture:add", ())
    finally:
        await _unlink_redis_project(host, port, project)


# -- real scripts -----------------------------------------------------------------------------

NEWCOMER = """
    import asyncio, sys
    from omniq import AsyncOmniQ
    from omniq.backend import create_backend

    async def add(x, y):
        return x + y

    def pair(x):
        return (x, {x})

    async def main(url, project):
        oq = AsyncOmniQ.from_backend(create_backend(url=url, project_name=project))
        await oq.start_worker()
        assert await oq.get_result(await oq.enqueue(add, args=(2, 3)), timeout=20) == 5
        assert await oq.get_result(await oq.enqueue(pair, args=(7,)), timeout=20) == (7, {7})
        await oq.close()
        print("ok")

    asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_a_script_with_its_own_functions_runs_without_a_secret_key(
    script_place: ScriptPlace,
) -> None:
    done = script_place.run(NEWCOMER, script_place.url, script_place.project)

    assert done.stdout.strip() == "ok"


PRODUCER = """
    import asyncio, os, sys
    from omniq import AsyncOmniQ
    from omniq.backend import create_backend

    oq = AsyncOmniQ.from_backend(
        create_backend(url=os.environ["SCRIPT_URL"], project_name=os.environ["SCRIPT_PROJECT"])
    )

    async def add(x, y):
        return x + y

    async def main(wait):
        async with oq:
            task_id = await oq.enqueue(add, args=(2, 3))
            print(task_id, flush=True)
            if wait:
                print(await oq.get_result(task_id, timeout=30))

    if __name__ == "__main__":
        asyncio.run(main(sys.argv[1:] == ["wait"]))
"""


def start_worker(place: ScriptPlace, *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "omniq", "worker", *options],
        cwd=place.folder,
        env=place.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop(worker: subprocess.Popen[str]) -> str:
    worker.send_signal(signal.SIGTERM)
    out, _ = worker.communicate(timeout=30)
    return out


@pytest.fixture
def redis_place(tmp_path: Path) -> Iterator[ScriptPlace]:
    places = open_place("redis", tmp_path)
    current = next(places)
    current.env.update(SCRIPT_URL=current.url, SCRIPT_PROJECT=current.project)
    yield current
    next(places, None)  # the cleanup


def test_omniq_worker_with_app_runs_the_functions_of_the_script(redis_place: ScriptPlace) -> None:
    redis_place.write("first.py", PRODUCER)
    worker = start_worker(redis_place, "--app", "first:oq")
    try:
        done = redis_place.run_unchecked(PRODUCER, "wait", name="first.py")
    finally:
        log = stop(worker)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n--- worker\n{log}"
    assert done.stdout.split()[-1] == "5"


def test_omniq_worker_without_app_fails_a_script_function_saying_to_use_app(
    redis_place: ScriptPlace,
) -> None:
    worker = start_worker(redis_place, "--url", redis_place.url, "--project", redis_place.project)
    try:
        task_id = redis_place.run(PRODUCER, name="first.py").stdout.split()[0]
        task = asyncio.run(final_state(redis_place, task_id))
    finally:
        stop(worker)
    assert task.status is TaskStatus.DEAD
    assert task.error_message is not None
    assert "'__main__:add'" in task.error_message
    assert "--app" in task.error_message


async def final_state(place: ScriptPlace, task_id: str) -> Task:
    backend = create_backend(url=place.url, project_name=place.project)
    async with AsyncOmniQ.from_backend(backend) as oq:
        deadline = time.monotonic() + 30
        while True:
            task = await oq.get_task(task_id)
            if task is not None and task.is_final:
                return task
            if time.monotonic() > deadline:
                raise AssertionError(f"task {task_id} did not end: {task}")
            await asyncio.sleep(0.05)
