"""What a worker runs: only functions it was told about (ARCHITECTURE section 4, omniq.registry).

A task written straight into the store (as anyone with write access to the broker can) names any
function it likes; the worker must refuse what it was not told about *before importing anything*,
and run what it was told about without ceremony. Tasks here are stored with the queue's own
``enqueue_many``, which records nothing as "enqueued by this process": that is the
broker-writer's path. The record of what the process enqueued is kept per store, so one test's
enqueues (each test has its own database) never widen what another test's worker runs.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from omniq import AsyncOmniQ, FunctionNotAllowed, Task, TaskStatus
from omniq._time import utcnow
from omniq.backend import create_backend
from omniq.config import reload_settings
from omniq.models.schedule import Schedule
from omniq.registry import FunctionPolicy, registry, worker_policy


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[AsyncOmniQ]:
    oq = AsyncOmniQ.from_backend(create_backend(url=f"sqlite:///{tmp_path / 'trust.db'}"))
    try:
        yield oq
    finally:
        await oq.stop_worker()
        await oq.close()


@pytest.fixture
def task_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh importable module that leaves a trace when it is imported, defines ``touch`` and
    re-exports ``os.system`` under its own name."""
    name = f"trust_tasks_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        "import os\n"
        "from os import system\n"
        "IMPORTED = os.environ.get('TRUST_MARK')\n"
        "if IMPORTED:\n"
        "    open(IMPORTED, 'a').close()\n"
        "def touch(path):\n"
        "    open(path, 'a').close()\n"
        "    return path\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


async def _stored(app: AsyncOmniQ, func: str, *args: object) -> str:
    """A task as a broker-writer stores it: straight into the queue, not through enqueue()."""
    (task_id,) = await app.task_queue.enqueue_many([Task(func=func, args=args, max_retries=2)])
    return task_id


async def _outcome(app: AsyncOmniQ, task_id: str) -> tuple[TaskStatus, str]:
    result = await app.get_task_result(task_id, timeout=20)
    assert result is not None, "the worker never finished the task"
    task = await app.get_task(task_id)
    assert task is not None
    return task.status, f"{result.error_type}: {result.error}"


@pytest.mark.parametrize(
    "func",
    ["os:system", "subprocess:call", "builtins:eval", "builtins:exec", "posix:system"],
)
async def test_stdlib_and_builtins_named_by_the_broker_are_refused(
    app: AsyncOmniQ, tmp_path: Path, func: str
) -> None:
    mark = tmp_path / "pwned"
    payload = (
        f"open({str(mark)!r}, 'w').close()" if func.startswith("builtins") else f"touch {mark}"
    )
    arg: object = ["touch", str(mark)] if func == "subprocess:call" else payload
    task_id = await _stored(app, func, arg)
    await app.start_worker()
    status, error = await _outcome(app, task_id)
    assert status is TaskStatus.DEAD  # poison: no retries
    assert error.startswith("FunctionNotAllowed")
    assert repr(func) in error
    assert "allow_any_function" in error
    assert "--include" in error
    assert not mark.exists()


async def test_a_module_nobody_named_is_not_even_imported(
    app: AsyncOmniQ, tmp_path: Path, task_module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    imported = tmp_path / "imported"
    monkeypatch.setenv("TRUST_MARK", str(imported))
    task_id = await _stored(app, f"{task_module}:touch", str(tmp_path / "ran"))
    await app.start_worker()
    status, error = await _outcome(app, task_id)
    assert status is TaskStatus.DEAD
    assert "FunctionNotAllowed" in error
    assert task_module not in sys.modules
    assert not imported.exists()
    assert not (tmp_path / "ran").exists()


async def test_functions_of_task_modules_run_but_what_they_import_does_not(
    tmp_path: Path, task_module: str
) -> None:
    url = f"sqlite:///{tmp_path / 'modules.db'}"
    app = AsyncOmniQ.from_backend(create_backend(url=url), task_modules=[task_module])
    try:
        ran = tmp_path / "ran"
        good = await _stored(app, f"{task_module}:touch", str(ran))
        reexport = await _stored(app, f"{task_module}:system", f"touch {tmp_path / 'pwned'}")
        through = await _stored(app, f"{task_module}:os.system", f"touch {tmp_path / 'pwned'}")
        await app.start_worker()
        assert (await _outcome(app, good))[0] is TaskStatus.SUCCESS
        assert ran.exists()
        for task_id in (reexport, through):
            status, error = await _outcome(app, task_id)
            assert status is TaskStatus.DEAD
            assert "FunctionNotAllowed" in error
            assert "defined in" in error
        assert not (tmp_path / "pwned").exists()
    finally:
        await app.stop_worker()
        await app.close()


async def test_task_modules_from_the_environment(
    tmp_path: Path, task_module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNIQ_TASK_MODULES", f" {task_module} , ")
    reload_settings()
    policy = worker_policy()
    assert policy.modules == {task_module}
    assert not policy.allow_any
    assert task_module in sys.modules  # imported at start, so its @task functions register
    assert registry.resolve(f"{task_module}:touch", policy).__name__ == "touch"


def test_a_task_module_that_cannot_be_imported_fails_at_start_naming_it() -> None:
    with pytest.raises(ValueError, match="no_such_module_for_trust"):
        worker_policy(["no_such_module_for_trust"])


async def test_allow_any_function_restores_running_any_importable_function(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'any.db'}"
    app = AsyncOmniQ.from_backend(create_backend(url=url), allow_any_function=True)
    try:
        task_id = await _stored(app, "os.path:basename", "/a/b/trusting.txt")
        await app.start_worker()
        assert await app.get_result(task_id, timeout=20) == "trusting.txt"
    finally:
        await app.stop_worker()
        await app.close()


async def test_allow_any_function_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIQ_ALLOW_ANY_FUNCTION", "1")
    reload_settings()
    assert worker_policy().allow_any
    assert not worker_policy(allow_any_function=False).allow_any


async def test_what_this_process_enqueued_runs_without_ceremony(
    app: AsyncOmniQ, tmp_path: Path, task_module: str
) -> None:
    """An in-process worker runs what its own application enqueued, by callable or by name."""
    module = __import__(task_module)
    by_callable = await app.enqueue(module.touch, args=(str(tmp_path / "a"),))
    by_name = await app.enqueue(f"{task_module}:touch", args=(str(tmp_path / "b"),))
    await app.start_worker()
    assert await app.get_result(by_callable, timeout=20) == str(tmp_path / "a")
    assert await app.get_result(by_name, timeout=20) == str(tmp_path / "b")


async def test_what_the_process_enqueued_to_another_store_is_still_refused(
    app: AsyncOmniQ, tmp_path: Path, task_module: str
) -> None:
    """ "Enqueued by this process" is per store: a process that enqueues ``touch`` to one store
    (its own, trusted) does not make its worker of another store (shared with other writers)
    run a ``touch`` that a broker-writer put there. Another application object on the *same*
    store (a producer beside the worker's application) counts as the process's own."""
    other = AsyncOmniQ.from_backend(create_backend(url=f"sqlite:///{tmp_path / 'other.db'}"))
    try:
        await other.enqueue(f"{task_module}:touch", args=(str(tmp_path / "theirs"),))
        written = await _stored(app, f"{task_module}:touch", str(tmp_path / "written"))
        await app.start_worker()
        status, error = await _outcome(app, written)
        assert status is TaskStatus.DEAD
        assert "FunctionNotAllowed" in error
        assert "not enqueued to this store by this process" in error
        assert not (tmp_path / "written").exists()
    finally:
        await other.close()
    producer = AsyncOmniQ.from_backend(create_backend(url=f"sqlite:///{tmp_path / 'trust.db'}"))
    try:
        own = await producer.enqueue(f"{task_module}:touch", args=(str(tmp_path / "own"),))
        assert await app.get_result(own, timeout=20) == str(tmp_path / "own")
    finally:
        await producer.close()


async def test_a_stored_schedule_cannot_make_a_worker_run_a_stdlib_function(
    app: AsyncOmniQ, tmp_path: Path
) -> None:
    """A one-shot schedule written into the store names ``os:system``: the worker's scheduler
    enqueues the occurrence, and the worker refuses it."""
    mark = tmp_path / "pwned"
    when = utcnow() + timedelta(milliseconds=200)
    schedule = Schedule(func="os:system", args=(f"touch {mark}",), run_at=when, next_run_at=when)
    await app.task_queue.save_schedule(schedule)
    await app.start_worker()
    for _ in range(200):
        tasks = [t for t in await app.list_tasks() if t.schedule_id == schedule.id]
        if tasks and tasks[0].is_final:
            break
        await asyncio.sleep(0.05)
    assert tasks
    assert tasks[0].status is TaskStatus.DEAD
    assert tasks[0].error_type == "FunctionNotAllowed"
    assert not mark.exists()


def test_callbacks_named_by_the_broker_go_through_the_same_check() -> None:
    policy = FunctionPolicy()
    with pytest.raises(FunctionNotAllowed, match="'os:system'"):
        registry.resolve("os:system", policy)
    # the producer's own references are its to vouch for
    assert registry.resolve("os.path:basename") is __import__("os").path.basename


def test_a_check_is_remembered_per_policy_and_never_for_the_script(task_module: str) -> None:
    """A worker checks a function once, not once per task; a refusal stays a refusal, another
    policy checks again, and ``__main__`` references follow the module standing for the script."""
    policy = FunctionPolicy([task_module])
    ref = f"{task_module}:touch"
    touch = registry.resolve(ref, policy)
    assert registry.resolve(ref, policy) is touch
    for _ in range(2):
        with pytest.raises(FunctionNotAllowed, match="defined in"):
            registry.resolve(f"{task_module}:system", policy)
    with pytest.raises(FunctionNotAllowed, match=repr(ref)):
        registry.resolve(ref, FunctionPolicy())
    script = sys.modules[task_module]
    with registry.main_module(script):
        assert registry.resolve("__main__:touch", policy) is touch
    with registry.main_module(None), pytest.raises(FunctionNotAllowed):
        registry.resolve("__main__:touch", policy)
