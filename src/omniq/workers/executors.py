"""The executor seam: *how* a task's function runs (ARCHITECTURE section 6).

The worker core claims, heartbeats, stores results and retries; an executor only runs one call with
a timeout. ``AsyncExecutor`` runs coroutine functions on the worker's loop and sync functions in a
bounded thread pool. Thread, process and gevent pools plug in here as further executors.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable
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


def _timeout_error(task: Task) -> TaskTimeout:
    return TaskTimeout(f"task {task.id!r} ({task.func}) ran past its timeout of {task.timeout}s")


class AsyncExecutor(Executor):
    """Coroutine functions on the loop (cancelled at their timeout); sync functions in a thread
    pool (abandoned at their timeout: a thread cannot be killed, so its work may go on in the
    background; the task is reported as timed out all the same)."""

    name = "async"

    def __init__(self, max_workers: int = 10) -> None:
        super().__init__(max_workers)
        self._pool: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="omniq-task")

    async def shutdown(self, wait: bool = True) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            if wait:
                await asyncio.get_running_loop().run_in_executor(None, pool.shutdown, True)
            else:
                pool.shutdown(wait=False, cancel_futures=True)

    async def run(self, task: Task, func: Callable[..., Any]) -> Any:
        if inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
            getattr(func, "__call__", None)  # noqa: B004 - async callable objects
        ):
            call = func(*task.args, **task.kwargs)
        else:
            if self._pool is None:
                await self.start()
            assert self._pool is not None
            ctx = contextvars.copy_context()
            call = asyncio.get_running_loop().run_in_executor(
                self._pool, functools.partial(ctx.run, func, *task.args, **task.kwargs)
            )
        if task.timeout is None:
            result = await call
            if inspect.isawaitable(result):  # a sync function that returned a coroutine
                result = await result
            return result
        scope = asyncio.timeout(task.timeout)
        try:
            async with scope:
                result = await call
                if inspect.isawaitable(result):
                    result = await result
        except TimeoutError:
            if scope.expired():  # ours, not a TimeoutError raised by the task itself
                raise _timeout_error(task) from None
            raise
        return result


EXECUTORS: dict[str, type[Executor]] = {"async": AsyncExecutor}

__all__ = ["EXECUTORS", "AsyncExecutor", "Executor"]
