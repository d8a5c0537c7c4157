"""The process-pool executor: each call runs in a child process (ARCHITECTURE section 6).

Functions and arguments cross to a child as envelope bytes (the one serializer: an importable
function travels by name, a lambda or closure through dill) over a private pipe, and the outcome
comes back the same way. The pool is our own rather than ``concurrent.futures``'s because a task
past its timeout must be *killed* and its child replaced without breaking the pool, and a child that
dies (``os._exit``, a segfault) must fail only its own task. Children start with ``forkserver``
(``spawn`` where unavailable), never a plain fork of a process running an event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import multiprocessing
import signal
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import msgspec

from omniq._time import utcnow
from omniq.config import get_logger
from omniq.exceptions import OmniQError, TaskTimeout
from omniq.models.progress import TaskProgress
from omniq.models.task import Task, callable_name
from omniq.progress import current_task, enter
from omniq.registry import registry
from omniq.serialization import Serializer
from omniq.workers._progress import WRITE_INTERVAL
from omniq.workers.executors import Executor, timeout_error

log = get_logger("worker")

#: payloads below this go down the pipe inline (Linux pipes buffer 64 KiB)
_INLINE_LIMIT = 60 * 1024
#: what a new child sends once it is ready to take a task
_READY = b"omniq-child-ready"
#: how long a new child may take to start (interpreter, imports) before it counts as dead
CHILD_START_TIMEOUT = 60.0


class ChildProcessDied(OmniQError):
    """The child process running a task exited before answering (``os._exit``, a crash, a kill)."""


class RemoteError(Exception):
    """An exception raised inside a child, carried back by type name, message and traceback."""

    def __init__(self, type_name: str, message: str, remote_traceback: str) -> None:
        super().__init__(message)
        self.type_name = type_name
        self.remote_traceback = remote_traceback


class _PipeProgress:
    """A child's progress outlet: reports go to the parent over the task's pipe as
    ``("progress", ...)`` messages before the outcome, at most one per ``WRITE_INTERVAL`` (the
    last value winning; a timer thread sends one that waits), and the pending one just before
    the outcome (:meth:`finish`). The parent writes them as it writes its own tasks'."""

    def __init__(self, conn: Connection, serializer: Serializer) -> None:
        self._conn = conn
        self._serializer = serializer
        self.lock = threading.Lock()  # one message at a time on the pipe
        self._pending: TaskProgress | None = None
        self._sent_at = 0.0
        self._timer: threading.Timer | None = None

    def __call__(self, task_id: str, claim: str, progress: TaskProgress) -> None:
        with self.lock:
            self._pending = progress
            wait = self._sent_at + WRITE_INTERVAL - time.monotonic()
            if wait <= 0:
                self._send_locked()
            elif self._timer is None:
                self._timer = threading.Timer(wait, self._send_late)
                self._timer.daemon = True
                self._timer.start()

    def _send_late(self) -> None:
        with self.lock:
            self._timer = None
            self._send_locked()

    def _send_locked(self) -> None:
        progress, self._pending = self._pending, None
        if progress is None:
            return
        self._sent_at = time.monotonic()
        message = ("progress", progress.fraction, progress.note, progress.data, progress.attempt)
        with contextlib.suppress(OSError):  # the parent is gone: the outcome send says so
            self._conn.send_bytes(self._serializer.dumps(message, what="task progress"))

    def finish(self) -> None:
        """The run ended: its pending report goes now, before the outcome (lock held after)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._send_locked()


def _child_main(conn: Connection) -> None:
    """The loop of one child: receive a task envelope, run it, send the outcome back."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when children stop
    serializer = Serializer(local=True)
    loop: asyncio.AbstractEventLoop | None = None
    try:
        conn.send_bytes(_READY)
    except OSError:
        return
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        outlet = _PipeProgress(conn, serializer)
        reply = contextvars.copy_context().run(_run_one, serializer, data, outlet, loop)
        if reply[0] == "loop":
            loop, reply = reply[1], reply[2]
        try:
            out = serializer.dumps(reply, what="task outcome")
        except Exception as exc:
            out = serializer.dumps(
                ("error", "SerializationError", f"the result cannot be sent back: {exc}", "")
            )
        with outlet.lock:
            outlet.finish()
            try:
                conn.send_bytes(out)
            except OSError:
                # the parent is gone (a SIGKILLed worker): nobody to answer, nothing to report;
                # its task was handed back by lease expiry. Leave quietly, not with a traceback.
                return


def _run_one(
    serializer: Serializer,
    data: bytes,
    outlet: _PipeProgress,
    loop: asyncio.AbstractEventLoop | None,
) -> tuple[Any, ...]:
    """Runs one task in a context of its own (its ``omniq.current_task()`` reports through
    ``outlet``); ``("loop", loop, reply)`` when it made the child's event loop."""
    made = None
    try:
        task = serializer.decode_task(data)
        enter(task, outlet)
        func = task.func_obj if task.func_obj is not None else registry.resolve(task.func)
        value = func(*task.args, **task.kwargs)
        if inspect.isawaitable(value):
            made = loop = loop or asyncio.new_event_loop()
            value = loop.run_until_complete(_awaited(value))
        reply: tuple[Any, ...] = ("ok", value)
    except BaseException as exc:
        reply = (
            "error",
            type(exc).__name__,
            str(exc),
            "".join(traceback.format_exception(exc)),
        )
    return reply if made is None else ("loop", made, reply)


async def _awaited(value: Any) -> Any:
    return await value


class _Child:
    def __init__(self, ctx: Any) -> None:
        parent, child = ctx.Pipe(duplex=True)
        self.conn: Connection = parent
        self.process = ctx.Process(
            target=_child_main, args=(child,), daemon=True, name="omniq-child"
        )
        self.process.start()
        child.close()
        self.tasks_run = 0

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
        with contextlib.suppress(Exception):
            self.conn.close()
        self.process.join(timeout=5)


class ProcessExecutor(Executor):
    """A bounded pool of child processes; ``max_tasks_per_child`` recycles children (a guard
    against leaks in task code)."""

    name = "process"

    def __init__(
        self,
        max_workers: int = 4,
        *,
        start_method: str | None = None,
        max_tasks_per_child: int | None = None,
    ) -> None:
        super().__init__(max_workers)
        methods = multiprocessing.get_all_start_methods()
        method = start_method or ("forkserver" if "forkserver" in methods else "spawn")
        if method not in methods or method == "fork":
            raise ValueError(f"start_method must be one of forkserver/spawn here, got {method!r}")
        self._ctx = multiprocessing.get_context(method)
        if method == "forkserver":
            _preload_in_forkserver(self._ctx)
        self.max_tasks_per_child = max_tasks_per_child
        self._serializer = Serializer(local=True)
        self._idle: list[_Child] = []
        self._all: set[_Child] = set()
        self._slots: asyncio.Semaphore | None = None

    async def start(self) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_workers)

    async def shutdown(self, wait: bool = True) -> None:
        children, self._all, self._idle = self._all, set(), []
        for child in children:
            with contextlib.suppress(Exception):
                child.conn.close()  # EOF: an idle child returns from its loop
        loop = asyncio.get_running_loop()
        for child in children:
            await loop.run_in_executor(None, child.process.join, 2 if wait else 0.1)
            if child.process.is_alive():
                child.kill()

    def _child_payload(self, task: Task, func: Callable[..., Any]) -> bytes:
        """The task as the child will see it: an importable function by name, anything else
        (lambdas, closures, ``__main__`` functions) by value."""
        ref = callable_name(func)
        if registry.is_importable_as(func, ref):
            shipped = msgspec.structs.replace(task, func=ref, func_obj=None)
        else:
            shipped = msgspec.structs.replace(task, func_obj=func)
        return self._serializer.encode_task(shipped)

    async def _take_child(self) -> _Child:
        if self._idle:
            return self._idle.pop()
        child = _Child(self._ctx)
        self._all.add(child)
        try:
            await self._until_ready(child)
        except BaseException:
            self._retire(child)
            raise
        return child

    async def _until_ready(self, child: _Child) -> None:
        """Waits for a new child's hello before its first task is sent, so that starting a
        process (an interpreter, imports: seconds on a loaded machine) never counts against a
        task's timeout."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(CHILD_START_TIMEOUT):  # not 3.11's wait_for: keeps a cancel
                await _readable(child.conn)
        except TimeoutError:
            raise ChildProcessDied(
                f"a new worker child did not start within {CHILD_START_TIMEOUT:g}s"
            ) from None
        try:
            hello = child.conn.recv_bytes()
        except (EOFError, OSError):
            await loop.run_in_executor(None, child.process.join, 1)
            raise ChildProcessDied(
                f"a new worker child died while starting (exit code {child.process.exitcode}); "
                "its error output says why"
            ) from None
        if hello != _READY:
            raise ChildProcessDied(f"a new worker child said {hello[:40]!r} instead of hello")

    def _retire(self, child: _Child) -> None:
        self._all.discard(child)
        child.kill()

    async def run(self, task: Task, func: Callable[..., Any]) -> Any:
        if self._slots is None:
            await self.start()
        assert self._slots is not None
        payload = self._child_payload(task, func)
        async with self._slots:
            child = await self._take_child()
            try:
                reply = await self._call(child, payload, task)
            except BaseException:
                self._retire(child)  # timed out, died, or we were cancelled mid-call
                raise
            child.tasks_run += 1
            if self.max_tasks_per_child and child.tasks_run >= self.max_tasks_per_child:
                self._retire(child)
            else:
                self._idle.append(child)
        if reply[0] == "ok":
            return reply[1]
        _, type_name, message, remote_tb = reply
        if type_name == "TaskTimeout":
            raise TaskTimeout(message)
        raise RemoteError(type_name, message, remote_tb)

    async def _call(self, child: _Child, payload: bytes, task: Task) -> tuple[Any, ...]:
        loop = asyncio.get_running_loop()
        if len(payload) < _INLINE_LIMIT:
            child.conn.send_bytes(payload)  # fits the pipe buffer of an idle child: never blocks
        else:
            await loop.run_in_executor(None, child.conn.send_bytes, payload)
        scope = asyncio.timeout(task.timeout)
        try:
            async with scope:
                while True:
                    reply = await self._message(child, task)
                    if reply[0] != "progress":
                        return reply
                    _forward_progress(task, reply)
        except TimeoutError:
            if scope.expired():
                raise timeout_error(task) from None
            raise

    async def _message(self, child: _Child, task: Task) -> tuple[Any, ...]:
        """The child's next message: a progress report, or the outcome."""
        await _readable(child.conn)
        try:
            # readable: the message (or EOF) is there; a large reply may still be arriving,
            # which recv_bytes waits out (the child writes it without stopping)
            data = child.conn.recv_bytes()
        except (EOFError, OSError):
            await asyncio.get_running_loop().run_in_executor(None, child.process.join, 1)
            raise ChildProcessDied(
                f"the process running task {task.id!r} ({task.func}) died "
                f"(exit code {child.process.exitcode})"
            ) from None
        return tuple(self._serializer.loads(data, what="task outcome"))


def _forward_progress(task: Task, message: tuple[Any, ...]) -> None:
    """A child's report, passed to the worker's writer through the parent's task context."""
    _, fraction, note, data, attempt = message
    progress = TaskProgress(
        fraction=fraction, note=note, data=data, attempt=attempt, updated_at=utcnow()
    )
    try:
        current_task().report(progress)
    except OmniQError as exc:  # no context (an executor used alone) or no progress capability
        log.warning("progress of task %s dropped: %s", task.id, exc)


def _preload_in_forkserver(ctx: Any) -> None:
    """Has the fork server import this module once, so each child is a fork that already holds
    it: a child replacing a killed one then starts in milliseconds instead of re-importing OmniQ
    (half a second or more). Modules preloaded already (``__main__`` by default) stay."""
    from multiprocessing import forkserver

    current = list(getattr(forkserver._forkserver, "_preload_modules", ["__main__"]))
    if __name__ not in current:
        ctx.set_forkserver_preload([*current, __name__])


async def _readable(conn: Connection) -> None:
    """Returns once ``conn`` has data (or EOF) to read, without a thread: the loop watches it."""
    loop = asyncio.get_running_loop()
    readable: asyncio.Future[None] = loop.create_future()
    fd = conn.fileno()

    def on_readable() -> None:
        if not readable.done():
            readable.set_result(None)

    loop.add_reader(fd, on_readable)
    try:
        await readable
    finally:
        loop.remove_reader(fd)


__all__ = ["ChildProcessDied", "ProcessExecutor", "RemoteError"]
