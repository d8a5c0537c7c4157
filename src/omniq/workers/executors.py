"""The executor seam: *how* a task's function runs (ARCHITECTURE section 6).

The worker core claims, heartbeats, stores results and retries; an executor only runs one call with
a timeout. ``AsyncExecutor`` runs coroutine functions on the worker's loop and sync functions in a
bounded thread pool; ``ThreadExecutor`` runs everything in a thread pool (async functions on a loop
of the thread's own); ``ProcessExecutor`` (:mod:`omniq.workers.process`) runs calls in child
processes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import inspect
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
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


class TaskThreadPool(concurrent.futures.Executor):
    """A thread pool that survives calls it had to give up on; threads start on demand.

    A thread cannot be killed, so a sync task past its timeout keeps its thread until the call
    returns, if ever. With ``ThreadPoolExecutor`` that thread is lost to the pool: after
    ``max_workers`` hung tasks nothing runs any more, and interpreter exit waits for them
    forever. Here :meth:`abandon` retires the thread of a call nobody waits for (it exits once
    the call returns) and starts a replacement at once, so the pool keeps its capacity; and
    threads are daemons, so a hung call never keeps the process alive.
    """

    def __init__(self, max_workers: int, thread_name_prefix: str = "omniq-task") -> None:
        self.max_workers = max_workers
        self._prefix = thread_name_prefix
        self._queue: queue.SimpleQueue[
            tuple[concurrent.futures.Future[Any], Callable[[], Any]] | None
        ] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._running: dict[concurrent.futures.Future[Any], int] = {}  # call -> thread ident
        self._retired: set[int] = set()
        self._threads = 0
        self._idle = 0
        self._spawned = 0
        self._closed = False

    @property
    def abandoned(self) -> int:
        """Threads still busy with calls that were given up on."""
        with self._lock:
            return len(self._retired)

    def _spawn(self) -> None:
        """Starts one thread; the caller holds the lock (or is the constructor)."""
        self._spawned += 1
        thread = threading.Thread(
            target=self._serve, name=f"{self._prefix}-{self._spawned}", daemon=True
        )
        self._threads += 1
        thread.start()

    def _serve(self) -> None:
        me = threading.get_ident()
        while True:
            with self._lock:
                self._idle += 1
            item = self._queue.get()
            with self._lock:
                self._idle -= 1
            if item is None:
                break
            future, call = item
            if not future.set_running_or_notify_cancel():
                continue
            with self._lock:
                self._running[future] = me
            try:
                result = call()
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)
            with self._lock:
                self._running.pop(future, None)
                if me in self._retired:  # a replacement took this thread's place
                    self._retired.discard(me)
                    self._threads -= 1
                    return
        with self._lock:
            self._threads -= 1

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        if self._closed:
            raise RuntimeError("this thread pool is shut down")
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._queue.put((future, functools.partial(fn, *args, **kwargs)))
        with self._lock:
            # threads start on demand: an async worker with a large concurrency that runs few
            # sync tasks keeps few threads
            serving = self._threads - len(self._retired)
            if self._idle < self._queue.qsize() and serving < self.max_workers:
                self._spawn()
        return future

    def abandon(self, future: concurrent.futures.Future[Any]) -> None:
        """Nobody waits for ``future`` any more: if its call still runs, its thread retires
        after it and a new thread takes its place now."""
        if future.cancel():  # not started yet: it never will
            return
        with self._lock:
            ident = self._running.get(future)
            if ident is None or ident in self._retired or self._closed:
                return
            self._retired.add(ident)
            self._spawn()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._closed = True
        if cancel_futures:
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
        with self._lock:
            count = self._threads
        for _ in range(count):
            self._queue.put(None)
        if wait:
            deadline = time.monotonic() + 3600
            while time.monotonic() < deadline:
                with self._lock:
                    busy = self._threads - len(self._retired)
                if busy <= 0:
                    break
                time.sleep(0.01)


class _Deliveries:
    """Results of pool calls handed to the event loop in batches.

    ``asyncio.wrap_future`` wakes the loop once per finished call (a ``call_soon_threadsafe``,
    so a write to the loop's self-pipe and one more turn of the loop each). Here a finished call
    joins a list, and only the first one into an empty list wakes the loop: every call that
    finishes while the loop is busy (the usual case with short tasks and a busy worker) is
    delivered by that same wake-up.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._ready: list[tuple[asyncio.Future[Any], concurrent.futures.Future[Any]]] = []

    def waiter(self, call: concurrent.futures.Future[Any]) -> asyncio.Future[Any]:
        """An awaitable on the loop with the outcome of ``call`` (running in the pool)."""
        waiter: asyncio.Future[Any] = self._loop.create_future()
        call.add_done_callback(functools.partial(self._finished, waiter))
        return waiter

    def _finished(self, waiter: asyncio.Future[Any], call: concurrent.futures.Future[Any]) -> None:
        """In the pool thread that ran the call (or on the loop, for a call already done)."""
        with self._lock:
            first = not self._ready
            self._ready.append((waiter, call))
        if first:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                self._loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        with self._lock:
            ready, self._ready = self._ready, []
        for waiter, call in ready:
            if waiter.done():  # given up on (a timeout, a stop)
                continue
            if call.cancelled():
                waiter.cancel()
                continue
            exc = call.exception()
            if exc is None:
                waiter.set_result(call.result())
            else:
                waiter.set_exception(exc)


class _ThreadPoolMixin:
    max_workers: int
    _pool: TaskThreadPool | None = None
    _deliveries: _Deliveries | None = None

    async def start(self) -> None:
        if self._pool is None:
            self._pool = TaskThreadPool(self.max_workers, thread_name_prefix="omniq-task")

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
        pool = self._pool
        assert pool is not None
        ctx = contextvars.copy_context()
        future = pool.submit(ctx.run, func, *args)
        deliveries = self._deliveries
        if deliveries is None or deliveries._loop is not asyncio.get_running_loop():
            deliveries = self._deliveries = _Deliveries(asyncio.get_running_loop())
        try:
            return await deliveries.waiter(future)
        except asyncio.CancelledError:
            # a timeout or a shutdown gave up on the call: the pool replaces its thread
            pool.abandon(future)
            raise


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
    "TaskThreadPool",
    "ThreadExecutor",
    "bounded",
    "is_async_callable",
    "timeout_error",
]
