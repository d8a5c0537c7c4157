"""Turning ``enqueue(func, ...)`` arguments into a validated :class:`Task`, once for every entry point.

Everything a user can get wrong is checked here, at enqueue time, before anything is stored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from omniq._time import utcnow
from omniq.config import get_settings
from omniq.exceptions import QueueNameError
from omniq.models.task import (
    DEFAULT_QUEUE,
    MAX_BACKOFF,
    MAX_RETRIES_RANGE,
    PRIORITY_RANGE,
    DependencyPolicy,
    PassResults,
    Task,
    check_id,
    check_int,
    check_seconds,
    check_time,
    func_ref,
)
from omniq.registry import registry

_QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")

_UNSET: Any = object()


def validate_queue_name(name: Any) -> str:
    """Queue names become table values, key parts, subjects and folder names: keep them inert."""
    if not isinstance(name, str) or not _QUEUE_NAME.fullmatch(name):
        raise QueueNameError(
            f"invalid queue name {name!r}: use 1-100 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return name


def check_allowed_queue(name: str, allowed: Iterable[str] | None) -> str:
    validate_queue_name(name)
    if allowed is not None:
        allowed = list(allowed)
        if name not in allowed:
            raise QueueNameError(f"unknown queue {name!r}: this task queue has {allowed}")
    return name


def default_queue_of(queues: Sequence[str] | None, default_queue: str | None = None) -> str:
    """Where a task goes when no queue is named: ``default_queue`` when given (it must be one of
    ``queues``), else ``"default"`` if the task queue has it, else its first named queue (a
    task queue built with ``queues=["high", "medium", "low"]`` sends unnamed tasks to
    ``"high"``), else ``"default"``."""
    if default_queue is not None:
        if queues is not None and default_queue not in queues:
            raise QueueNameError(
                f"default_queue {default_queue!r} is not one of this task queue's queues "
                f"{list(queues)}"
            )
        return validate_queue_name(default_queue)
    if not queues or DEFAULT_QUEUE in queues:
        return DEFAULT_QUEUE
    return queues[0]


def _seconds(value: Any, name: str, *, allow_zero: bool = True) -> float | None:
    """None stays None (no limit); anything else within the model's duration range."""
    return None if value is None else check_seconds(value, name, allow_zero=allow_zero)


def _backoff(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"retry_backoff must be a number, got {value!r}")
    if not (math.isfinite(value) and 0 <= value <= MAX_BACKOFF):
        raise ValueError(
            f"retry_backoff must be a finite number 0 .. {MAX_BACKOFF:g}, got {value!r}"
        )
    return float(value)


def func_reference(func: Callable[..., Any] | str) -> tuple[str, Callable[..., Any] | None]:
    """The stored name of a function, and the callable itself when it has no name to travel by
    (a lambda, a closure: those need dill)."""
    if isinstance(func, str):
        registry.resolve(func)  # raises FunctionNotFound naming it
        registry.mark_enqueued(func)
        return func, None
    if not callable(func):
        raise TypeError(f"func must be a callable or a task name, got {func!r}")
    name, obj = func_ref(func)
    if obj is None:
        registry.mark_enqueued(name)
    return name, obj


def mark_enqueued(task: Task) -> Task:
    """Records a ready-made ``Task`` the application enqueues (its function and callbacks), so
    that a worker of this process may run them, as for one built by :func:`build_task`. Never
    called for tasks read from storage: what the broker says is no instruction."""
    registry.mark_enqueued(task.func)
    for refs in task.callbacks.values():
        for ref in refs:
            if isinstance(ref, str):
                registry.mark_enqueued(ref)
    return task


def _dependencies(depends_on: Iterable[str] | str | None) -> tuple[str, ...]:
    """Task ids, given as ids or as Task objects (their ids are taken)."""
    if depends_on is None:
        return ()
    if isinstance(depends_on, str):
        depends_on = [depends_on]
    ids: list[str] = []
    for dep in depends_on:
        dep_id = dep.id if isinstance(dep, Task) else dep
        if not isinstance(dep_id, str):
            raise TypeError(f"depends_on takes task ids, got {dep!r}")
        check_id(dep_id, "a depends_on id")
        if dep_id in ids:
            raise ValueError(f"depends_on lists {dep_id!r} twice")
        ids.append(dep_id)
    return tuple(ids)


_CALLBACK_EVENTS = ("on_success", "on_failure", "on_retry", "on_complete")


def _callbacks(
    given: Mapping[str, Iterable[Callable[..., Any] | str]] | None,
    named: Mapping[str, Callable[..., Any] | str | Iterable[Callable[..., Any] | str] | None],
) -> dict[str, list[Any]]:
    """Callbacks by event: an importable callable travels by name, any other callable (a lambda,
    a closure) as itself, which the serializer then carries with dill."""
    merged: dict[str, list[Any]] = {}
    pairs: list[tuple[str, Any]] = list((given or {}).items()) + [
        (k, v) for k, v in named.items() if v is not None
    ]
    for event, funcs in pairs:
        event = str(event)
        if event not in _CALLBACK_EVENTS:
            raise ValueError(f"unknown callback {event!r}: use one of {list(_CALLBACK_EVENTS)}")
        items = [funcs] if callable(funcs) or isinstance(funcs, str) else list(funcs)
        for f in items:
            if isinstance(f, str):
                registry.resolve(f)  # raises FunctionNotFound naming it
                registry.mark_enqueued(f)
                merged.setdefault(event, []).append(f)
            elif callable(f):
                name, obj = func_reference(f)
                merged.setdefault(event, []).append(name if obj is None else obj)
            else:
                raise TypeError(f"{event} takes callables or task names, got {f!r}")
    return merged


def build_task(
    func: Callable[..., Any] | str,
    *,
    args: Iterable[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    func_args: Mapping[str, Any] | Iterable[Any] | None = None,
    queue_name: str | None = None,
    priority: int | None = None,
    run_at: datetime | None = None,
    run_in: timedelta | float | None = None,
    eta: datetime | None = None,
    ttl: timedelta | float | None = _UNSET,
    expires_at: datetime | None = None,
    result_ttl: timedelta | float | None = _UNSET,
    max_retries: int | None = None,
    retry_delay: timedelta | float | None = None,
    retry_backoff: float | None = None,
    retry_max_delay: timedelta | float | None = None,
    retry_jitter: bool | None = None,
    retry_on: Iterable[type[BaseException] | str] | None = None,
    timeout: timedelta | float | None = _UNSET,
    task_id: str | None = None,
    depends_on: Iterable[str] | str | None = None,
    dependency_policy: DependencyPolicy | str | None = None,
    pass_results: bool | PassResults | str | None = None,
    callbacks: Mapping[str, Iterable[Callable[..., Any] | str]] | None = None,
    on_success: Callable[..., Any] | str | Iterable[Callable[..., Any] | str] | None = None,
    on_failure: Callable[..., Any] | str | Iterable[Callable[..., Any] | str] | None = None,
    on_retry: Callable[..., Any] | str | Iterable[Callable[..., Any] | str] | None = None,
    on_complete: Callable[..., Any] | str | Iterable[Callable[..., Any] | str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    schedule_id: str | None = None,
    defaults: Mapping[str, Any] | None = None,
    default_queue: str = DEFAULT_QUEUE,
) -> Task:
    """Builds a Task; ``defaults`` are a registered task's options (below explicit arguments,
    above settings); ``default_queue`` is the task queue's (see :func:`default_queue_of`)."""
    settings = get_settings()
    d = dict(defaults or {})
    name, func_obj = func_reference(func)
    if registry.get(name) is not None:
        d = {**registry.options(name), **d}

    call_args: tuple[Any, ...] = ()
    call_kwargs: dict[str, Any] = {}
    if func_args is not None:
        if isinstance(func_args, Mapping):
            call_kwargs.update(func_args)
        elif isinstance(func_args, str | bytes):
            raise TypeError(f"func_args must be a dict or a sequence, got {func_args!r}")
        else:
            call_args = tuple(func_args)
    if args is not None:
        if isinstance(args, str | bytes | Mapping):
            raise TypeError(f"args must be a tuple or list, got {args!r}")
        if call_args:
            raise TypeError("pass positional arguments in args or func_args, not both")
        call_args = tuple(args)
    if kwargs is not None:
        if not isinstance(kwargs, Mapping):
            raise TypeError(f"kwargs must be a dict, got {kwargs!r}")
        overlap = set(kwargs) & set(call_kwargs)
        if overlap:
            raise TypeError(
                f"keyword arguments given twice (kwargs and func_args): {sorted(overlap)}"
            )
        call_kwargs.update(kwargs)
    for key in call_kwargs:
        if not isinstance(key, str):
            raise TypeError(f"keyword argument names must be strings, got {key!r}")

    now = utcnow()
    when = [v for v in (run_at, run_in, eta) if v is not None]
    if len(when) > 1:
        raise TypeError("give at most one of run_at, run_in and eta")
    start: datetime | None = None
    if run_at is not None or eta is not None:
        label, value = ("run_at", run_at) if run_at is not None else ("eta", eta)
        start = check_time(value, label)
    elif run_in is not None:
        start = now + timedelta(seconds=check_seconds(run_in, "run_in"))

    ttl_value = d.get("ttl", settings.TASK_TTL) if ttl is _UNSET else ttl
    ttl_s = _seconds(ttl_value, "ttl", allow_zero=False)
    deadline = check_time(expires_at, "expires_at") if expires_at is not None else None
    if deadline is None and ttl_s is not None:
        deadline = now + timedelta(seconds=ttl_s)
    if deadline is not None and start is not None and deadline <= start:
        raise ValueError(
            f"the task would expire ({deadline.isoformat()}) before it may start ({start.isoformat()})"
        )

    result_ttl_value = (
        d.get("result_ttl", settings.RESULT_TTL) if result_ttl is _UNSET else result_ttl
    )
    timeout_value = d.get("timeout", settings.TASK_TIMEOUT) if timeout is _UNSET else timeout

    retries = (
        max_retries if max_retries is not None else d.get("max_retries", settings.RETRY_ATTEMPTS)
    )
    delay_value = (
        retry_delay if retry_delay is not None else d.get("retry_delay", settings.RETRY_DELAY)
    )
    policy_on = retry_on if retry_on is not None else d.get("retry_on", ())
    queue = queue_name if queue_name is not None else d.get("queue_name", default_queue)
    prio = priority if priority is not None else d.get("priority", 0)

    cb = _callbacks(
        callbacks,
        {
            "on_success": on_success,
            "on_failure": on_failure,
            "on_retry": on_retry,
            "on_complete": on_complete,
        },
    )
    deps = _dependencies(depends_on)
    if pass_results is None or pass_results is False:
        passing = PassResults.NONE
    elif pass_results is True:
        passing = PassResults.ONE if len(deps) == 1 else PassResults.ALL
    else:
        try:
            passing = PassResults(pass_results)
        except ValueError:
            raise ValueError(
                f"pass_results must be True/False or one of {[p.value for p in PassResults]}, "
                f"got {pass_results!r}"
            ) from None
    if passing is not PassResults.NONE and not deps:
        raise ValueError("pass_results needs depends_on: there are no results to pass")
    if passing is PassResults.ONE and len(deps) != 1:
        raise ValueError(
            f"pass_results='one' needs exactly one dependency, got {len(deps)}: use 'all'"
        )
    try:
        policy = DependencyPolicy(dependency_policy or DependencyPolicy.CANCEL)
    except ValueError:
        raise ValueError(
            f"dependency_policy must be one of {[p.value for p in DependencyPolicy]}, "
            f"got {dependency_policy!r}"
        ) from None

    task = Task(
        func=name,
        args=call_args,
        kwargs=call_kwargs,
        queue_name=validate_queue_name(queue),
        priority=check_int(prio, "priority", PRIORITY_RANGE),
        eta=start,
        expires_at=deadline,
        result_ttl=_seconds(result_ttl_value, "result_ttl"),
        max_retries=check_int(retries, "max_retries", MAX_RETRIES_RANGE),
        retry_delay=_seconds(delay_value, "retry_delay") or 0.0,
        retry_backoff=_backoff(
            retry_backoff if retry_backoff is not None else d.get("retry_backoff", 2.0)
        ),
        retry_max_delay=_seconds(
            retry_max_delay if retry_max_delay is not None else d.get("retry_max_delay", 300.0),
            "retry_max_delay",
        )
        or 0.0,
        retry_jitter=bool(
            retry_jitter if retry_jitter is not None else d.get("retry_jitter", True)
        ),
        retry_on=tuple(
            r if isinstance(r, str) else f"{r.__module__}.{r.__qualname__}" for r in policy_on
        ),
        timeout=_seconds(timeout_value, "timeout", allow_zero=False),
        depends_on=deps,
        dependency_policy=policy,
        pass_results=passing,
        callbacks=cb,
        metadata=dict(metadata or {}),
        schedule_id=schedule_id,
        created_at=now,
    )
    if task_id is not None:
        task.id = check_id(task_id, "task_id")
    task.func_obj = func_obj
    return task
