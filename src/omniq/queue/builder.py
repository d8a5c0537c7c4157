"""Turning ``enqueue(func, ...)`` arguments into a validated :class:`Task`, once for every entry point.

Everything a user can get wrong is checked here, at enqueue time, before anything is stored.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec

from omniq._time import utcnow
from omniq.config import get_settings
from omniq.exceptions import ConfigError, QueueNameError
from omniq.models.limits import (
    ConcurrencyKey,
    check_concurrency_limit,
    check_limit_options,
    concurrency_key_of,
    rate_limit_text,
)
from omniq.models.retry import RetryPolicy
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


#: entries the per-function caches hold at most (then they start again): functions made on the
#: fly must not make them grow without bound
_RESOLVED_MAX = 4096
#: callable -> (registry generation, the name it travels by): a function's reference is looked
#: up once, not on every enqueue. Only callables that have a name are kept (module-level
#: functions, which live as long as their module anyway); a lambda made per call is not.
_references: dict[Any, tuple[int, str]] = {}
_MAIN_PREFIX = "__main__:"


def func_reference(func: Callable[..., Any] | str) -> tuple[str, Callable[..., Any] | None]:
    """The stored name of a function, and the callable itself when it has no name to travel by
    (a lambda, a closure: those need dill)."""
    if isinstance(func, str):
        registry.resolve(func)  # raises FunctionNotFound naming it
        return func, None
    try:
        known = _references.get(func)
    except TypeError:  # an unhashable callable object
        known = None
    if known is not None and known[0] == registry.generation:
        return known[1], None
    if not callable(func):
        raise TypeError(f"func must be a callable or a task name, got {func!r}")
    name, obj = func_ref(func)
    # not a function of the script: its name there may be bound again to another function
    # (a notebook cell run twice), which must not inherit the first one's reference
    if obj is None and not name.startswith(_MAIN_PREFIX):
        if len(_references) >= _RESOLVED_MAX:
            _references.clear()
        with contextlib.suppress(TypeError):
            _references[func] = (registry.generation, name)
    return name, obj


def task_references(task: Task) -> Iterator[str]:
    """The function references of a task the application enqueues (its function and named
    callbacks): what the task queue records so that the application's own worker may run them
    (``BaseTaskQueue.enqueued_functions``). Never asked of tasks read from storage: what the
    broker says is no instruction."""
    if task.func_obj is None:
        yield task.func
    for refs in task.callbacks.values():
        for ref in refs:
            if isinstance(ref, str):
                yield ref


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

Callbacks = Callable[..., Any] | str | Iterable[Callable[..., Any] | str]


class Timing(msgspec.Struct, frozen=True, kw_only=True):
    """When a task may start (``run_at``, ``run_in`` or ``eta``: at most one), how long it may
    wait (``ttl`` or ``expires_at``), run (``timeout``) and keep its result (``result_ttl``).
    UNSET: the registered task's option, else the setting; None: no limit."""

    run_at: datetime | None = None
    run_in: timedelta | float | None = None
    eta: datetime | None = None
    expires_at: datetime | None = None
    ttl: timedelta | float | msgspec.UnsetType | None = msgspec.UNSET
    result_ttl: timedelta | float | msgspec.UnsetType | None = msgspec.UNSET
    timeout: timedelta | float | msgspec.UnsetType | None = msgspec.UNSET


class RetryOptions(msgspec.Struct, frozen=True, kw_only=True):
    """The retry options asked for (None: the registered task's option, else the setting);
    :func:`retry_policy` resolves them into the task's :class:`RetryPolicy`."""

    max_retries: int | None = None
    retry_delay: timedelta | float | None = None
    retry_backoff: float | None = None
    retry_max_delay: timedelta | float | None = None
    retry_jitter: bool | None = None
    retry_on: Iterable[type[BaseException] | str] | None = None


class CallbackOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Callbacks by event: a mapping, and/or one keyword per event."""

    callbacks: Mapping[str, Iterable[Callable[..., Any] | str]] | None = None
    on_success: Callbacks | None = None
    on_failure: Callbacks | None = None
    on_retry: Callbacks | None = None
    on_complete: Callbacks | None = None


class DependencyOptions(msgspec.Struct, frozen=True, kw_only=True):
    """What a task waits for, what happens when one of them fails, and whether it is handed
    their results."""

    depends_on: Iterable[str] | str | None = None
    dependency_policy: DependencyPolicy | str | None = None
    pass_results: bool | PassResults | str | None = None


class LimitOptions(msgspec.Struct, frozen=True, kw_only=True):
    """The limits a task runs under, shared by every worker (see omniq.models.limits):
    ``rate_limit`` for its task name, at most ``concurrency_limit`` (default 1) running at once
    under ``concurrency_key`` (a string, or a callable given the task's arguments)."""

    rate_limit: str | None = None
    concurrency_key: ConcurrencyKey | None = None
    concurrency_limit: int | None = None


#: the groups of a call that gives none of their options (compared by identity: from_keywords
#: leaves a group it has no keyword for at these defaults)
NO_TIMING = Timing()
NO_RETRY = RetryOptions()
NO_CALLBACKS = CallbackOptions()
NO_DEPENDENCIES = DependencyOptions()
NO_LIMITS = LimitOptions()


class TaskOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Everything ``enqueue(func, **options)`` may say about a task, grouped by what travels
    together. :meth:`from_keywords` reads the flat keywords of the public API."""

    args: Iterable[Any] | None = None
    kwargs: Mapping[str, Any] | None = None
    func_args: Mapping[str, Any] | Iterable[Any] | None = None
    queue_name: str | None = None
    priority: int | None = None
    task_id: str | None = None
    metadata: Mapping[str, Any] | None = None
    schedule_id: str | None = None
    timing: Timing = NO_TIMING
    retry: RetryOptions = NO_RETRY
    callbacks: CallbackOptions = NO_CALLBACKS
    dependencies: DependencyOptions = NO_DEPENDENCIES
    limits: LimitOptions = NO_LIMITS

    @property
    def only_per_call(self) -> bool:
        """True when the call says nothing about timing, retries, callbacks or dependencies:
        the task then takes all of them from its function's resolved defaults."""
        return (
            self.timing is NO_TIMING
            and self.retry is NO_RETRY
            and self.callbacks is NO_CALLBACKS
            and self.dependencies is NO_DEPENDENCIES
            and self.limits is NO_LIMITS
        )

    @classmethod
    def from_keywords(cls, options: Mapping[str, Any], caller: str = "build_task") -> TaskOptions:
        """The flat keywords of ``enqueue``/``build_task`` sorted into their groups; an unknown
        keyword is refused naming it, as a Python signature would."""
        groups: dict[type[msgspec.Struct], dict[str, Any]] = {}
        for key, value in options.items():
            group = _GROUP_OF.get(key)
            if group is None:
                raise TypeError(f"{caller}() got an unexpected keyword argument {key!r}")
            groups.setdefault(group, {})[key] = value
        top = groups.pop(cls, {})
        for group, values in groups.items():
            top[_FIELD_OF[group]] = group(**values)
        return cls(**top)


_FIELD_OF: dict[type[msgspec.Struct], str] = {
    Timing: "timing",
    RetryOptions: "retry",
    CallbackOptions: "callbacks",
    DependencyOptions: "dependencies",
    LimitOptions: "limits",
}
_GROUP_OF: dict[str, type[msgspec.Struct]] = {
    **{f: TaskOptions for f in TaskOptions.__struct_fields__ if f not in _FIELD_OF.values()},
    **{f: g for g in _FIELD_OF for f in g.__struct_fields__},
}


def _callbacks(options: CallbackOptions) -> dict[str, list[Any]]:
    """Callbacks by event: an importable callable travels by name, any other callable (a lambda,
    a closure) as itself, which the serializer then carries with dill."""
    merged: dict[str, list[Any]] = {}
    named = [(event, getattr(options, event)) for event in _CALLBACK_EVENTS]
    pairs: list[tuple[str, Any]] = list((options.callbacks or {}).items()) + [
        (k, v) for k, v in named if v is not None
    ]
    for event, funcs in pairs:
        event = str(event)
        if event not in _CALLBACK_EVENTS:
            raise ValueError(f"unknown callback {event!r}: use one of {list(_CALLBACK_EVENTS)}")
        items = [funcs] if callable(funcs) or isinstance(funcs, str) else list(funcs)
        for f in items:
            if isinstance(f, str):
                registry.resolve(f)  # raises FunctionNotFound naming it
                merged.setdefault(event, []).append(f)
            elif callable(f):
                name, obj = func_reference(f)
                merged.setdefault(event, []).append(name if obj is None else obj)
            else:
                raise TypeError(f"{event} takes callables or task names, got {f!r}")
    return merged


def build_task(
    func: Callable[..., Any] | str,
    /,
    *,
    defaults: Mapping[str, Any] | None = None,
    default_queue: str = DEFAULT_QUEUE,
    **options: Any,
) -> Task:
    """Builds a Task from the keywords of ``enqueue`` (see :class:`TaskOptions` and its groups);
    ``defaults`` are a registered task's options (below explicit arguments, above settings);
    ``default_queue`` is the task queue's (see :func:`default_queue_of`)."""
    return build_task_from(
        func, TaskOptions.from_keywords(options), defaults=defaults, default_queue=default_queue
    )


def build_task_from(
    func: Callable[..., Any] | str,
    options: TaskOptions,
    *,
    defaults: Mapping[str, Any] | None = None,
    default_queue: str = DEFAULT_QUEUE,
) -> Task:
    """:func:`build_task` from options already grouped: every check happens here, before
    anything is stored."""
    name, func_obj = func_reference(func)
    resolved = (
        resolved_defaults(name, default_queue)
        if defaults is None and options.only_per_call
        else None
    )
    if resolved is None:
        return _build_general(name, func_obj, options, defaults, default_queue)
    call_args, call_kwargs = _call_arguments(options)
    now = utcnow()
    policy = resolved.policy
    task = Task(
        func=name,
        args=call_args,
        kwargs=call_kwargs,
        queue_name=resolved.queue
        if options.queue_name is None
        else validate_queue_name(options.queue_name),
        priority=resolved.priority
        if options.priority is None
        else check_int(options.priority, "priority", PRIORITY_RANGE),
        expires_at=None if resolved.ttl is None else now + resolved.ttl,
        result_ttl=resolved.result_ttl,
        max_retries=policy.max_retries,
        retry_delay=policy.delay,
        retry_backoff=policy.backoff,
        retry_max_delay=policy.max_delay,
        retry_jitter=policy.jitter,
        retry_on=policy.retry_on,
        timeout=resolved.timeout,
        metadata=dict(options.metadata or {}),
        schedule_id=options.schedule_id,
        created_at=now,
    )
    if resolved.limits is not None:
        _set_limits(task, NO_LIMITS, resolved.limits)
    return _finish(task, options, func_obj)


def _build_general(
    name: str,
    func_obj: Callable[..., Any] | None,
    options: TaskOptions,
    defaults: Mapping[str, Any] | None,
    default_queue: str,
) -> Task:
    """A task whose call sets timing, retry, callback or dependency options (or that is given
    explicit ``defaults``): every option resolved here, in the call's own terms."""
    d = dict(defaults or {})
    if registry.get(name) is not None:
        d = {**registry.options(name), **d}
    call_args, call_kwargs = _call_arguments(options)
    now = utcnow()
    eta, expires_at, result_ttl, timeout = _times(options.timing, d, now)
    policy = retry_policy(options.retry, d)
    deps = _dependencies(options.dependencies.depends_on)
    queue = (
        options.queue_name if options.queue_name is not None else d.get("queue_name", default_queue)
    )
    prio = options.priority if options.priority is not None else d.get("priority", 0)
    task = Task(
        func=name,
        args=call_args,
        kwargs=call_kwargs,
        queue_name=validate_queue_name(queue),
        priority=check_int(prio, "priority", PRIORITY_RANGE),
        eta=eta,
        expires_at=expires_at,
        result_ttl=result_ttl,
        max_retries=policy.max_retries,
        retry_delay=policy.delay,
        retry_backoff=policy.backoff,
        retry_max_delay=policy.max_delay,
        retry_jitter=policy.jitter,
        retry_on=policy.retry_on,
        timeout=timeout,
        depends_on=deps,
        dependency_policy=_dependency_policy(options.dependencies.dependency_policy),
        pass_results=_pass_results(options.dependencies.pass_results, deps),
        callbacks=_callbacks(options.callbacks),
        metadata=dict(options.metadata or {}),
        schedule_id=options.schedule_id,
        created_at=now,
    )
    if options.limits is not NO_LIMITS or (d and _LIMIT_KEYS.intersection(d)):
        _set_limits(task, options.limits, d)
    return _finish(task, options, func_obj)


def _finish(task: Task, options: TaskOptions, func_obj: Callable[..., Any] | None) -> Task:
    if options.task_id is not None:
        task.id = check_id(options.task_id, "task_id")
    task.func_obj = func_obj
    return task


class ResolvedDefaults(msgspec.Struct, frozen=True):
    """What a task of one function gets for every option its call leaves out: the registered
    task's options, else the settings, checked. It depends only on the function, so it is
    resolved once (per function, task queue default, settings and registration), not on every
    enqueue."""

    queue: str
    priority: int
    policy: RetryPolicy
    ttl: timedelta | None
    result_ttl: float | None
    timeout: float | None
    #: the registered limit options (rate_limit, concurrency_key, concurrency_limit), checked;
    #: None when it has none (the usual case: nothing more to do per task)
    limits: dict[str, Any] | None = None


#: (name, default queue) -> (the settings and the registry generation it was resolved under, it)
_resolved: dict[tuple[str, str], tuple[object, int, ResolvedDefaults | None]] = {}


def resolved_defaults(name: str, default_queue: str) -> ResolvedDefaults | None:
    """The cached :class:`ResolvedDefaults` of ``name``; None when one of its defaults is
    invalid (a registered ``max_retries=-1``): such a task is built the general way, which
    refuses the bad value only if the call does not override it, as it always did."""
    settings = get_settings()
    generation = registry.generation
    key = (name, default_queue)
    hit = _resolved.get(key)
    if hit is not None and hit[0] is settings and hit[1] == generation:
        return hit[2]
    d = registry.options(name) if registry.get(name) is not None else {}
    try:
        ttl, result_ttl, timeout = _limits(NO_TIMING, d)
        resolved: ResolvedDefaults | None = ResolvedDefaults(
            queue=validate_queue_name(d.get("queue_name", default_queue)),
            priority=check_int(d.get("priority", 0), "priority", PRIORITY_RANGE),
            policy=retry_policy(NO_RETRY, d),
            ttl=None if ttl is None else timedelta(seconds=ttl),
            result_ttl=result_ttl,
            timeout=timeout,
            limits=_registered_limits(d),
        )
    except (TypeError, ValueError):
        resolved = None
    if len(_resolved) >= _RESOLVED_MAX:
        _resolved.clear()  # functions made on the fly (a name per call): no unbounded growth
    _resolved[key] = (settings, generation, resolved)
    return resolved


_LIMIT_KEYS = frozenset(LimitOptions.__struct_fields__)


def _registered_limits(d: Mapping[str, Any]) -> dict[str, Any] | None:
    """The limit options among a registered task's, checked (ConfigError otherwise)."""
    found = {k: v for k, v in d.items() if k in _LIMIT_KEYS and v is not None}
    if not found:
        return None
    check_limit_options(found)
    return found


def _set_limits(task: Task, limits: LimitOptions, d: Mapping[str, Any]) -> None:
    """The task's limits: each as asked for at enqueue, else the registered task's."""
    rate = limits.rate_limit if limits.rate_limit is not None else d.get("rate_limit")
    task.rate_limit = rate_limit_text(rate)
    key = limits.concurrency_key if limits.concurrency_key is not None else d.get("concurrency_key")
    limit = (
        limits.concurrency_limit
        if limits.concurrency_limit is not None
        else d.get("concurrency_limit")
    )
    task.concurrency_key = concurrency_key_of(key, task.args, task.kwargs)
    if task.concurrency_key is not None:
        task.concurrency_limit = check_concurrency_limit(1 if limit is None else limit)
    elif limit is not None:
        raise ConfigError("concurrency_limit needs a concurrency_key to count tasks under")


def _call_arguments(options: TaskOptions) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The call's positional and keyword arguments, from ``args``/``kwargs`` and/or
    ``func_args`` (a dict of keywords or a sequence of positionals)."""
    call_args: tuple[Any, ...] = ()
    call_kwargs: dict[str, Any] = {}
    func_args, args, kwargs = options.func_args, options.args, options.kwargs
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
    return call_args, call_kwargs


def _times(
    timing: Timing, d: Mapping[str, Any], now: datetime
) -> tuple[datetime | None, datetime | None, float | None, float | None]:
    """(eta, expires_at, result_ttl, timeout) of a task built ``now``."""
    when = [v for v in (timing.run_at, timing.run_in, timing.eta) if v is not None]
    if len(when) > 1:
        raise TypeError("give at most one of run_at, run_in and eta")
    start: datetime | None = None
    if timing.run_at is not None or timing.eta is not None:
        label, value = (
            ("run_at", timing.run_at) if timing.run_at is not None else ("eta", timing.eta)
        )
        start = check_time(value, label)
    elif timing.run_in is not None:
        start = now + timedelta(seconds=check_seconds(timing.run_in, "run_in"))
    ttl_s, result_ttl, timeout = _limits(timing, d)
    deadline = (
        check_time(timing.expires_at, "expires_at") if timing.expires_at is not None else None
    )
    if deadline is None and ttl_s is not None:
        deadline = now + timedelta(seconds=ttl_s)
    if deadline is not None and start is not None and deadline <= start:
        raise ValueError(
            f"the task would expire ({deadline.isoformat()}) before it may start ({start.isoformat()})"
        )
    return start, deadline, result_ttl, timeout


def _limits(
    timing: Timing, d: Mapping[str, Any]
) -> tuple[float | None, float | None, float | None]:
    """(ttl, result_ttl, timeout) in seconds: as the call asks, else the registered task's
    (``d``), else the setting; None: no limit."""
    settings = get_settings()
    ttl = d.get("ttl", settings.TASK_TTL) if timing.ttl is msgspec.UNSET else timing.ttl
    result_ttl = (
        d.get("result_ttl", settings.RESULT_TTL)
        if timing.result_ttl is msgspec.UNSET
        else timing.result_ttl
    )
    timeout = (
        d.get("timeout", settings.TASK_TIMEOUT)
        if timing.timeout is msgspec.UNSET
        else timing.timeout
    )
    return (
        _seconds(ttl, "ttl", allow_zero=False),
        _seconds(result_ttl, "result_ttl"),
        _seconds(timeout, "timeout", allow_zero=False),
    )


def retry_policy(retry: RetryOptions, defaults: Mapping[str, Any] | None = None) -> RetryPolicy:
    """The policy a task gets: each option as asked for, else the registered task's
    (``defaults``), else the setting; checked against the model's limits."""
    settings = get_settings()
    d = defaults or {}

    def pick(value: Any, key: str, fallback: Any) -> Any:
        return value if value is not None else d.get(key, fallback)

    retry_on = pick(retry.retry_on, "retry_on", ())
    return RetryPolicy(
        max_retries=check_int(
            pick(retry.max_retries, "max_retries", settings.RETRY_ATTEMPTS),
            "max_retries",
            MAX_RETRIES_RANGE,
        ),
        delay=_seconds(pick(retry.retry_delay, "retry_delay", settings.RETRY_DELAY), "retry_delay")
        or 0.0,
        backoff=_backoff(pick(retry.retry_backoff, "retry_backoff", 2.0)),
        max_delay=_seconds(pick(retry.retry_max_delay, "retry_max_delay", 300.0), "retry_max_delay")
        or 0.0,
        jitter=bool(pick(retry.retry_jitter, "retry_jitter", True)),
        retry_on=tuple(
            r if isinstance(r, str) else f"{r.__module__}.{r.__qualname__}" for r in retry_on
        ),
    )


def _pass_results(
    pass_results: bool | PassResults | str | None, deps: tuple[str, ...]
) -> PassResults:
    if pass_results is None or pass_results is False:
        return PassResults.NONE
    if pass_results is True:
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
    return passing


def _dependency_policy(value: DependencyPolicy | str | None) -> DependencyPolicy:
    try:
        return DependencyPolicy(value or DependencyPolicy.CANCEL)
    except ValueError:
        raise ValueError(
            f"dependency_policy must be one of {[p.value for p in DependencyPolicy]}, got {value!r}"
        ) from None
