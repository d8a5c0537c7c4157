"""Lifecycle callbacks: per task (``on_success=...`` at enqueue) and process-wide hooks through a
:class:`CallbackManager`.

Callbacks run in the worker process after the task's outcome is known. They are notifications,
not part of the task: a callback that raises is logged and counted (``WorkerInfo.callback_errors``)
and never changes the task's outcome. Sync callbacks run in a thread so a slow one cannot stall
the worker's event loop; async ones are awaited. Like the task itself, a callback may run again if
the worker dies before the task is acknowledged (at-least-once).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from omniq.config import get_logger
from omniq.models.task import Task

log = get_logger("callbacks")

#: per-task callback names, as accepted by ``enqueue(..., on_success=...)``
TASK_EVENTS = ("on_success", "on_failure", "on_retry", "on_complete")
#: process-wide hook names of a CallbackManager
HOOK_EVENTS = ("start", "success", "failure", "retry", "complete")

Callback = Callable[["TaskOutcome"], Any]
T = TypeVar("T")


@dataclass(frozen=True)
class TaskOutcome:
    """What a callback receives.

    ``event`` is ``start``, ``success``, ``retry``, ``failure`` (final: out of attempts, poison,
    cancelled or timed out for good) or ``complete`` (after success or failure). ``result`` is the
    returned value on success; ``error`` the exception on retry/failure (raised in another process
    it is an ``omniq.exceptions.RemoteError`` carrying the original type name).
    """

    event: str
    task: Task
    worker_id: str
    result: Any = None
    error: BaseException | None = None
    error_type: str | None = None
    error_message: str | None = None
    retry_at: datetime | None = None
    duration: float | None = None

    @property
    def task_id(self) -> str:
        return self.task.id

    @property
    def succeeded(self) -> bool:
        return self.event == "success" or (self.event == "complete" and self.error_type is None)


class CallbackManager:
    """Process-wide lifecycle hooks::

        hooks = CallbackManager()

        @hooks.on("failure")
        async def page_someone(outcome: TaskOutcome) -> None: ...

        worker = AsyncWorker(queue, callbacks=hooks)  # or AsyncOmniQ(..., callbacks=hooks)

    Every worker also runs the hooks of :data:`default_hooks` (the manager of the process).
    """

    def __init__(self) -> None:
        self._hooks: dict[str, list[Callback]] = {name: [] for name in HOOK_EVENTS}
        self.errors = 0

    def __repr__(self) -> str:
        counts = {k: len(v) for k, v in self._hooks.items() if v}
        return f"<CallbackManager {counts} errors={self.errors}>"

    def on(self, event: str, func: Callback | None = None) -> Any:
        """Registers ``func`` for ``event``; usable as ``@hooks.on("success")`` too."""
        if event not in self._hooks:
            raise ValueError(f"unknown hook event {event!r}: use one of {list(HOOK_EVENTS)}")
        if func is None:
            return lambda f: self.on(event, f)
        if not callable(func):
            raise TypeError(f"a hook must be callable, got {func!r}")
        self._hooks[event].append(func)
        return func

    def on_start(self, func: Callback) -> Callback:
        return self.on("start", func)  # type: ignore[no-any-return]

    def on_success(self, func: Callback) -> Callback:
        return self.on("success", func)  # type: ignore[no-any-return]

    def on_failure(self, func: Callback) -> Callback:
        return self.on("failure", func)  # type: ignore[no-any-return]

    def on_retry(self, func: Callback) -> Callback:
        return self.on("retry", func)  # type: ignore[no-any-return]

    def on_complete(self, func: Callback) -> Callback:
        return self.on("complete", func)  # type: ignore[no-any-return]

    def remove(self, event: str, func: Callback) -> bool:
        hooks = self._hooks.get(event, [])
        if func in hooks:
            hooks.remove(func)
            return True
        return False

    def clear(self) -> None:
        for hooks in self._hooks.values():
            hooks.clear()

    def hooks(self, event: str) -> list[Callback]:
        return list(self._hooks.get(event, ()))

    def __bool__(self) -> bool:
        return any(self._hooks.values())


#: the process-wide manager every worker consults
default_hooks = CallbackManager()


async def invoke(func: Callable[..., Any], outcome: TaskOutcome) -> bool:
    """Calls one callback; False (logged) when it raised. Never raises itself."""
    try:
        if inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
            getattr(func, "__call__", None)  # noqa: B004 - an object with an async __call__
        ):
            await func(outcome)
        else:
            result = await asyncio.to_thread(func, outcome)
            if inspect.isawaitable(result):
                await result
        return True
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception(
            "callback %r for task %s (%s) failed; the task's outcome stands",
            func,
            outcome.task.id,
            outcome.event,
        )
        return False


# -- enqueue hooks -----------------------------------------------------------------------------
#: A function called with each task just before it is stored, in the process that enqueues it.
EnqueueHook = Callable[[Task], None]

#: The process-wide enqueue hooks (metrics count enqueues here, tracing puts the trace context in
#: ``task.metadata`` so that the worker's span joins the producer's trace). They are plain sync
#: functions on the enqueue path: they must be cheap, and with none installed the cost is one
#: emptiness test per batch.
enqueue_hooks: list[EnqueueHook] = []


def on_enqueue(func: EnqueueHook) -> EnqueueHook:
    """Installs a process-wide enqueue hook (once, however often it is installed)."""
    if not callable(func):
        raise TypeError(f"an enqueue hook must be callable, got {func!r}")
    if func not in enqueue_hooks:
        enqueue_hooks.append(func)
    return func


def remove_enqueue_hook(func: EnqueueHook) -> bool:
    if func in enqueue_hooks:
        enqueue_hooks.remove(func)
        return True
    return False


def run_enqueue_hooks(tasks: Iterable[Task]) -> None:
    """Calls every enqueue hook on every task. A hook that raises is logged and the enqueue goes
    on: observing a task never stops it from being stored."""
    hooks = tuple(enqueue_hooks)
    for task in tasks:
        for hook in hooks:
            try:
                hook(task)
            except Exception:
                log.exception(
                    "enqueue hook %r failed for task %s; the task is stored", hook, task.id
                )


# -- run wrappers --------------------------------------------------------------------------------
#: A function called with each task as its run begins, in the worker; the context manager it
#: returns is entered around the run, in the task's own context (its coroutine, or the thread of a
#: sync task, which gets a copy of that context), so what the task's code does happens inside it.
RunWrapper = Callable[[Task], AbstractContextManager[Any]]

#: The process-wide run wrappers (tracing makes each run's span the current span of the task's
#: code here). With none installed a worker pays one emptiness test per task.
run_wrappers: list[RunWrapper] = []


def around_run(func: RunWrapper) -> RunWrapper:
    """Installs a process-wide run wrapper (once, however often it is installed)."""
    if not callable(func):
        raise TypeError(f"a run wrapper must be callable, got {func!r}")
    if func not in run_wrappers:
        run_wrappers.append(func)
    return func


def remove_run_wrapper(func: RunWrapper) -> bool:
    if func in run_wrappers:
        run_wrappers.remove(func)
        return True
    return False


async def run_wrapped(task: Task, run: Callable[[], Awaitable[T]]) -> T:
    """Awaits ``run()`` inside every run wrapper's context manager. A wrapper that fails to enter
    is logged and left out: observing a task never stops it from running."""
    with contextlib.ExitStack() as stack:
        for wrapper in tuple(run_wrappers):
            try:
                stack.enter_context(wrapper(task))
            except Exception:
                log.exception("run wrapper %r failed for task %s; the task runs", wrapper, task.id)
        return await run()


__all__ = [
    "HOOK_EVENTS",
    "TASK_EVENTS",
    "CallbackManager",
    "EnqueueHook",
    "RunWrapper",
    "TaskOutcome",
    "around_run",
    "default_hooks",
    "enqueue_hooks",
    "invoke",
    "on_enqueue",
    "remove_enqueue_hook",
    "remove_run_wrapper",
    "run_enqueue_hooks",
    "run_wrapped",
    "run_wrappers",
]
