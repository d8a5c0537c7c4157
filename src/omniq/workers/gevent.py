"""The gevent executor: sync functions as greenlets in a bounded gevent pool, for very many
concurrent blocking-I/O tasks in one process (ARCHITECTURE section 6).

It only makes sense in a monkey-patched process (``omniq worker --type gevent`` patches before
anything is imported), where blocking calls in task code yield to other greenlets. The worker core
keeps running on its asyncio loop in the main greenlet: with ``select`` patched, the loop's waits
let the hub run the task greenlets, and each greenlet hands its outcome back with
``call_soon_threadsafe`` (same OS thread, through the loop's self-pipe). Async functions still run on
the loop itself.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Any

from omniq.exceptions import ConfigError
from omniq.models.task import Task
from omniq.workers.executors import Executor, bounded, is_async_callable


class GeventExecutor(Executor):
    name = "gevent"

    def __init__(self, max_workers: int = 100) -> None:
        super().__init__(max_workers)
        self._pool: Any = None

    async def start(self) -> None:
        if self._pool is not None:
            return
        try:
            from gevent import monkey
            from gevent.pool import Pool
        except ImportError:
            raise ConfigError(
                "the gevent worker needs gevent: pip install 'omniq-tasks[gevent]'"
            ) from None
        if not monkey.is_module_patched("socket"):
            raise ConfigError(
                "the gevent worker needs a monkey-patched process: run `omniq worker --type gevent`, "
                "or call gevent.monkey.patch_all() before anything else is imported"
            )
        self._pool = Pool(self.max_workers)

    async def shutdown(self, wait: bool = True) -> None:
        pool, self._pool = self._pool, None
        if pool is not None and not wait:
            pool.kill(block=False)

    async def run(self, task: Task, func: Callable[..., Any]) -> Any:
        if is_async_callable(func):
            return await bounded(func(*task.args, **task.kwargs), task)
        if self._pool is None:
            await self.start()
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[Any] = loop.create_future()

        def settle(ok: bool, value: Any) -> None:
            if not outcome.done():
                (outcome.set_result if ok else outcome.set_exception)(value)

        def greenlet_body() -> None:
            try:
                value = func(*task.args, **task.kwargs)
            except BaseException as exc:
                loop.call_soon_threadsafe(settle, False, exc)
            else:
                loop.call_soon_threadsafe(settle, True, value)

        # a greenlet starts with an empty context: run it in a copy of the task's (its
        # omniq.current_task(), the run wrappers' context)
        greenlet = self._pool.spawn(contextvars.copy_context().run, greenlet_body)
        try:
            return await bounded(outcome, task)
        except BaseException:
            greenlet.kill(block=False)  # timed out or cancelled: a greenlet can be killed
            raise


__all__ = ["GeventExecutor"]
