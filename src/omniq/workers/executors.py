"""The executor seam: *how* a task's function runs (ARCHITECTURE section 6).

The worker core claims, heartbeats, stores results and retries; an executor only runs one call with
a timeout. ``AsyncExecutor`` runs coroutine functions on the worker's loop and sync functions in a
bounded thread pool; ``ThreadExecutor`` runs everything in a thread pool (async functions on a loop
of the thread's own); ``ProcessExecutor`` (:mod:`omniq.workers.process`) runs calls in child
processes.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from omniq.exceptions import TaskTimeout
from omniq.models.task import Task


class Executor(ABC):
    name: ClassVar[str]

    def __init__(self, max_workers: int = 10) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers!r}")
        self.max_workers = max_workers

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Creates pools; called once by the worker before the first task."""

    async def shutdown(self, wait: bool = True) -> None:  # noqa: B027 - optional hook
        """Releases pools; running calls are abandoned when ``wait`` is False."""

    @abstractmethod
    async def run(self, task: Task, func: Callable[..., Any]) -> Any:
        """Runs ``func(*task.args, **task.kwargs)``; raises TaskTimeout past ``task.timeout``."""


def timeout_error(task: Task) -> TaskTimeout:
    return TaskTimeout(f"task {task.id!r} ({task.func}) ran past its timeout of {task.timeout}s")


async def bounded(call: Awaitable[Any], task: Task) -> Any:
    """Awaits ``call`` within the task's timeout; a TimeoutError the task raises itself stays
    what it is (only our own deadline becomes TaskTimeout)."""
    if task.timeout is None:
        result = await call
        return await result if inspect.isawaitable(result) else result
    scope = asyncio.timeout(task.timeout)
    try:
        async with scope:
            result = await call
            return await result if inspect.isawaitable(result) else result
    except TimeoutError:
        if scope.expired():
            raise timeout_error(task) from None
        raise


def is_async_callable(func: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - async callable objects
    )


class _ThreadPoolMixin:
    max_workers: int
    _pool: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="omniq-task")

    async def shutdown(self, wait: bool = True) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if wait:
            await asyncio.get_running_loop().run_in_executor(None, pool.shutdown, True)
        else:
            pool.shutdown(wait=False, cancel_futures=True)

    async def _in_thread(self, func: Callable[..., Any], *args: Any) -> Any:
        if self._pool is None:
            await self.start()
        assert self._pool is not None
        ctx = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, functools.partial(ctx.run, func, *args)
        )


class AsyncExecutor(_ThreadPoolMixin, Executor):
    """Coroutine functions on the loop (cancelled at their timeout); sync functions in a thread
    pool (abandoned at their timeout: a thread cannot be killed, so its work may go on in the
    background; the task is reported as timed out all the same)."""

    name = "async"

    async def run(self, task: Task, func: Callable[..., Any]) -> Any:
        if is_async_callable(func):
            return await bounded(func(*task.args, **task.kwargs), task)
        return await bounded(self._in_thread(func, *task.args, **task.kwargs), task)

    async def _in_thread(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await super()._in_thread(functools.partial(func, *args, **kwargs))


def _run_in_thread(task: Task, func: Callable[..., Any]) -> Any:
    """Runs in a pool thread. An async function gets a loop of its own for the call (closed after
    it, so no loop outlives its thread), with the timeout applied there, where cancellation
    actually works."""
    result = func(*task.args, **task.kwargs)
    if not inspect.isawaitable(result):
        return result
    return asyncio.run(bounded(result, task))


class ThreadExecutor(_ThreadPoolMixin, Executor):
    """Every call in a bounded thread pool: for blocking I/O-bound code. Async functions run on a
    per-thread loop and are cancelled at their timeout; sync functions are abandoned (reported)."""

    name = "thread"

    async def run(self, task: Task, func: Callable[..., Any]) -> Any:
        return await bounded(self._in_thread(_run_in_thread, task, func), task)


EXECUTORS: dict[str, type[Executor]] = {"async": AsyncExecutor, "thread": ThreadExecutor}

__all__ = [
    "EXECUTORS",
    "AsyncExecutor",
    "Executor",
    "ThreadExecutor",
    "bounded",
    "is_async_callable",
    "timeout_error",
]
