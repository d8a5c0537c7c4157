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
import inspect
import multiprocessing
import signal
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import msgspec

from omniq.exceptions import OmniQError, TaskTimeout
from omniq.models.task import Task, callable_name
from omniq.registry import registry
from omniq.serialization import Serializer
from omniq.workers.executors import Executor, timeout_error

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
        try:
            task = serializer.decode_task(data)
            func = task.func_obj if task.func_obj is not None else registry.resolve(task.func)
            value = func(*task.args, **task.kwargs)
            if inspect.isawaitable(value):
                loop = loop or asyncio.new_event_loop()
                value = loop.run_until_complete(_awaited(value))
            reply: tuple[Any, ...] = ("ok", value)
        except BaseException as exc:
            reply = (
                "error",
                type(exc).__name__,
                str(exc),
                "".join(traceback.format_exception(exc)),
            )
        try:
            out = serializer.dumps(reply, what="task outcome")
        except Exception as exc:
            out = serializer.dumps(
                ("error", "SerializationError", f"the result cannot be sent back: {exc}", "")
            )
        try:
            conn.send_bytes(out)
        except OSError:
            # the parent is gone (a SIGKILLed worker): nobody to answer, nothing to report; its
            # task was handed back by lease expiry. Leave quietly instead of a traceback.
            return


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
            await asyncio.wait_for(_readable(child.conn), CHILD_START_TIMEOUT)
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
        if task.timeout is None:
            await _readable(child.conn)
        else:
            try:
                await asyncio.wait_for(_readable(child.conn), task.timeout)
            except TimeoutError:
                raise timeout_error(task) from None
        try:
            # readable: the reply (or EOF) is there; a large reply may still be arriving, which
            # recv_bytes waits out (the child writes it without stopping)
            data = child.conn.recv_bytes()
        except (EOFError, OSError):
            await loop.run_in_executor(None, child.process.join, 1)
            raise ChildProcessDied(
                f"the process running task {task.id!r} ({task.func}) died "
                f"(exit code {child.process.exitcode})"
            ) from None
        reply: tuple[Any, ...] = tuple(self._serializer.loads(data, what="task outcome"))
        return reply


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
