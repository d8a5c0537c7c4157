"""Enqueue hooks and run wrappers (omniq.callbacks): what they see, and that one that fails never
stops a task from being stored or run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from omniq import AsyncOmniQ
from omniq.backend import create_backend
from omniq.callbacks import (
    around_run,
    enqueue_hooks,
    on_enqueue,
    remove_enqueue_hook,
    remove_run_wrapper,
    run_wrappers,
)
from omniq.models.task import Task


async def triple(x: int) -> int:
    return 3 * x


@pytest.fixture
def clean() -> Iterator[None]:
    yield
    enqueue_hooks.clear()
    run_wrappers.clear()


async def test_hooks_see_each_task_and_wrap_its_run(clean: None) -> None:
    seen: list[str] = []

    def mark(task: Task) -> None:
        task.metadata["marked"] = True
        seen.append(f"enqueue {task.id}")

    @contextlib.contextmanager
    def around(task: Task) -> Iterator[None]:
        seen.append(f"enter {task.id} marked={task.metadata.get('marked')}")
        yield
        seen.append(f"exit {task.id}")

    assert on_enqueue(mark) is mark
    on_enqueue(mark)  # installed once however often
    around_run(around)
    async with AsyncOmniQ.from_backend(create_backend(url="memory://")) as oq:
        await oq.start_worker()
        task_id = await oq.enqueue(triple, args=(2,))
        assert await oq.get_result(task_id, timeout=10) == 6
    assert seen == [f"enqueue {task_id}", f"enter {task_id} marked=True", f"exit {task_id}"]
    assert remove_enqueue_hook(mark)
    assert remove_run_wrapper(around)
    assert not remove_run_wrapper(around)


async def test_a_failing_hook_or_wrapper_is_logged_and_the_task_goes_on(
    clean: None, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_hook(task: Task) -> None:
        raise RuntimeError("hook bug")

    def broken_wrapper(task: Task) -> contextlib.AbstractContextManager[None]:
        raise RuntimeError("wrapper bug")

    on_enqueue(broken_hook)
    around_run(broken_wrapper)
    async with AsyncOmniQ.from_backend(create_backend(url="memory://")) as oq:
        await oq.start_worker()
        task_id = await oq.enqueue(triple, args=(5,))
        assert await oq.get_result(task_id, timeout=10) == 15
    assert f"enqueue hook {broken_hook!r} failed for task {task_id}" in caplog.text
    assert f"run wrapper {broken_wrapper!r} failed for task {task_id}" in caplog.text


def test_hooks_must_be_callable() -> None:
    with pytest.raises(TypeError, match="an enqueue hook must be callable, got 'x'"):
        on_enqueue("x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a run wrapper must be callable, got 3"):
        around_run(3)  # type: ignore[arg-type]
