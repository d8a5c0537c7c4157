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

from omniq.config import get_logger
from omniq.exceptions import TaskTimeout
from omniq.models.task import Task

log = get_logger("worker")


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


#: :attr:`_Call.thread` of a call no thread has taken yet, and of one given up on before that
_QUEUED = 0
_CANCELLED = -1
_DONE = -2


class _Call:
    """One call handed to a :class:`TaskThreadPool`, and where its outcome goes: ``outcome(ok,
    value)`` runs in the pool thread once the call returned (``ok``) or raised (``value`` is the
    exception)."""

    __slots__ = ("fn", "future", "outcome", "thread")

    def __init__(self, fn: Callable[[], Any], outcome: Callable[[bool, Any], None]) -> None:
        self.fn = fn
        self.outcome = outcome
        #: _QUEUED, _CANCELLED, _DONE, or the ident of the thread running it
        self.thread = _QUEUED
        #: the future :meth:`TaskThreadPool.submit` returned for it, if any
        self.future: concurrent.futures.Future[Any] | None = None


class _PoolFuture(concurrent.futures.Future[Any]):
    """What :meth:`TaskThreadPool.submit` returns: a future that knows its call."""

    call: _Call


#: what a submitted call whose future was cancelled before it started returns instead of running
_SKIPPED = object()


class TaskThreadPool(concurrent.futures.Executor):
    """A thread pool that survives calls it had to give up on; threads start on demand.

    A thread cannot be killed, so a sync task past its timeout keeps its thread until the call
    returns, if ever. With ``ThreadPoolExecutor`` that thread is lost to the pool: after
    ``max_workers`` hung tasks nothing runs any more, and interpreter exit waits for them
    forever. Here :meth:`abandon` retires the thread of a call nobody waits for (it exits once
    the call returns) and starts a replacement at once, so the pool keeps its capacity; and
    threads are daemons, so a hung call never keeps the process alive.

    The worker hands calls over with :meth:`call`, not :meth:`submit`: a
    ``concurrent.futures.Future`` per call costs a condition variable, taken four times (created,
    set running, set done, read back on the loop), and the thread takes the pool's lock twice per
    call here instead of four times. That hand-off was about a third of the thread worker's own
    CPU per task.
    """

    def __init__(self, max_workers: int, thread_name_prefix: str = "omniq-task") -> None:
        self.max_workers = max_workers
        self._prefix = thread_name_prefix
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._retired: set[int] = set()
        self._threads = 0
        #: threads waiting for a call that no call has been promised to yet
        self._idle = 0
        #: calls queued with no thread promised to them (every thread was busy)
        self._backlog = 0
        self._spawned = 0
        self._closed = False

    @property
    def abandoned(self) -> int:
        """Threads still busy with calls that were given up on."""
        with self._lock:
            return len(self._retired)

    def _spawn(self, idle: bool) -> None:
        """Starts one thread, ``idle`` or promised to the call being queued; the caller holds
        the lock."""
        self._spawned += 1
        thread = threading.Thread(
            target=self._serve, name=f"{self._prefix}-{self._spawned}", daemon=True
        )
        self._threads += 1
        if idle:
            self._idle += 1
        thread.start()

    def _serve(self) -> None:
        me = threading.get_ident()
        lock = self._lock
        get = self._queue.get
        while True:
            call = get()
            with lock:
                if call is None:
                    self._threads -= 1
                    return
                if call.thread != _QUEUED:  # given up on before it started
                    self._free()
                    continue
                call.thread = me
            try:
                value = call.fn()
                ok = True
            except BaseException as exc:
                value, ok = exc, False
            try:
                call.outcome(ok, value)
            except Exception:  # the thread must go on serving: its place in the pool counts
                log.exception("a thread pool call's outcome could not be handed over")
            del value
            with lock:
                call.thread = _DONE
                if me in self._retired:  # a replacement took this thread's place
                    self._retired.discard(me)
                    self._threads -= 1
                    return
                self._free()

    def _free(self) -> None:
        """A thread is done with a call and takes the next (the caller holds the lock)."""
        if self._backlog:
            self._backlog -= 1  # one that waits already, without a thread promised
        else:
            self._idle += 1

    def call(self, fn: Callable[[], Any], outcome: Callable[[bool, Any], None]) -> _Call:
        """Runs ``fn()`` in a pool thread, then ``outcome(ok, value)`` in that thread."""
        if self._closed:
            raise RuntimeError("this thread pool is shut down")
        call = _Call(fn, outcome)
        # each call is promised to an idle thread, or to a new one (threads start on demand: an
        # async worker with a large concurrency that runs few sync tasks keeps few threads), or
        # waits for the first thread to finish
        with self._lock:
            if self._idle:
                self._idle -= 1
            elif self._threads - len(self._retired) < self.max_workers:
                self._spawn(idle=False)
            else:
                self._backlog += 1
        self._queue.put(call)
        return call

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        future = _PoolFuture()

        def run() -> Any:
            if not future.set_running_or_notify_cancel():
                return _SKIPPED
            return fn(*args, **kwargs)

        def outcome(ok: bool, value: Any) -> None:
            if value is _SKIPPED:
                return
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

        future.call = self.call(run, outcome)
        future.call.future = future
        return future

    def abandon(self, call: _Call | concurrent.futures.Future[Any]) -> None:
        """Nobody waits for ``call`` (or a future from :meth:`submit`) any more: if it has not
        started it never will; if it runs, its thread retires after it and a new thread takes
        its place now."""
        if isinstance(call, _PoolFuture):
            if call.cancel():  # not started yet: it never will
                return
            call = call.call
        elif not isinstance(call, _Call):
            raise TypeError(f"not a call of this pool: {call!r}")
        with self._lock:
            ident = call.thread
            if ident == _QUEUED:
                call.thread = _CANCELLED
                return
            if ident in (_CANCELLED, _DONE) or ident in self._retired or self._closed:
                return
            self._retired.add(ident)
            self._spawn(idle=True)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._closed = True
        if cancel_futures:
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    # a worker's call has no outcome then (its waiter is shutting down too)
                    item.thread = _CANCELLED
                    if item.future is not None:
                        item.future.cancel()
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
    """Outcomes of pool calls handed to the event loop in batches.

    ``asyncio.wrap_future`` wakes the loop once per finished call (a ``call_soon_threadsafe``,
    so a write to the loop's self-pipe and one more turn of the loop each). Here a finished call
    joins a list, and only the first one into an empty list wakes the loop: every call that
    finishes while the loop is busy (the usual case with short tasks and a busy worker) is
    delivered by that same wake-up.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._ready: list[tuple[asyncio.Future[Any], bool, Any]] = []

    def put(self, waiter: asyncio.Future[Any], ok: bool, value: Any) -> None:
        """In the pool thread that ran the call: ``waiter`` (on the loop) gets its outcome."""
        with self._lock:
            first = not self._ready
            self._ready.append((waiter, ok, value))
        if first:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                self._loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        with self._lock:
            ready, self._ready = self._ready, []
        for waiter, ok, value in ready:
            if waiter.done():  # given up on (a timeout, a stop)
                continue
            if ok:
                waiter.set_result(value)
            else:
                waiter.set_exception(value)


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
        loop = asyncio.get_running_loop()
        deliveries = self._deliveries
        if deliveries is None or deliveries._loop is not loop:
            deliveries = self._deliveries = _Deliveries(loop)
        waiter: asyncio.Future[Any] = loop.create_future()
        ctx = contextvars.copy_context()
        call = pool.call(
            functools.partial(ctx.run, func, *args), functools.partial(deliveries.put, waiter)
        )
        try:
            return await waiter
        except asyncio.CancelledError:
            # a timeout or a shutdown gave up on the call: the pool replaces its thread
            pool.abandon(call)
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
