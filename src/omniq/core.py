"""The façade: ``AsyncOmniQ`` (the implementation) and ``OmniQ`` (its sync twin).

It owns a task queue, a result storage and an optional event storage, chosen independently, and
starts workers on them. Everything here delegates to the three interfaces; nothing knows which
backend is behind them.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Generic, ParamSpec, Self, TypeVar

from omniq._lifecycle import AsyncConnectable
from omniq._redact import redact_url
from omniq._sync import SyncWrapper, run_sync, unwrap, wrap
from omniq._time import as_seconds, utcnow
from omniq.backend import AsyncBackend, create_backend, normalize_type, type_from_url
from omniq.callbacks import CallbackManager
from omniq.config import get_settings
from omniq.config.env import setting_source
from omniq.config.logging import get_logger
from omniq.events.logger import EventLogger
from omniq.exceptions import (
    ConfigError,
    TaskCancelledError,
    TaskExpiredError,
    TaskFailedError,
    TaskNotFound,
)
from omniq.models.config import ComponentSpec, OmniQConfig
from omniq.models.event import EventType, TaskEvent
from omniq.models.result import ResultStatus, TaskResult
from omniq.models.schedule import MissedRunPolicy, Schedule, ScheduleState
from omniq.models.task import Task, TaskStatus, callable_name
from omniq.models.worker import WorkerInfo
from omniq.queue.builder import mark_enqueued
from omniq.queue.scheduler import next_occurrence, validate_timing
from omniq.registry import module_names, registry
from omniq.storage.base import BaseEventStorage, BaseResultStorage, BaseTaskQueue
from omniq.workers.worker import AsyncWorker
from omniq.workflows.canvas import (
    Chain,
    Chord,
    Group,
    Signature,
    Workflow,
    WorkflowRun,
    compile_workflow,
)

P = ParamSpec("P")
R = TypeVar("R")

_TICK = timedelta(microseconds=1)

_REQUEUEABLE = frozenset({TaskStatus.DEAD, TaskStatus.CANCELLED, TaskStatus.EXPIRED})

log = get_logger("core")

_SCHEDULE_TASK_FIELDS = (
    "priority",
    "max_retries",
    "retry_delay",
    "retry_backoff",
    "retry_max_delay",
    "retry_jitter",
    "retry_on",
    "timeout",
    "result_ttl",
)

_TASK_OPTIONS = (
    "queue_name",
    "priority",
    "max_retries",
    "retry_delay",
    "retry_backoff",
    "retry_max_delay",
    "retry_jitter",
    "retry_on",
    "timeout",
    "ttl",
    "result_ttl",
)


def result_value(task_id: str, result: TaskResult | None) -> Any:
    """What ``get_result`` returns: the value on success, None when there is no result yet; a
    failed, cancelled or expired task raises, so an error is never mistaken for a value."""
    if result is None:
        return None
    if result.status is ResultStatus.SUCCESS:
        return result.result
    if result.status is ResultStatus.CANCELLED:
        reason = f": {result.error}" if result.error and result.error != "cancelled" else ""
        raise TaskCancelledError(f"task {task_id!r} was cancelled{reason}")
    if result.status is ResultStatus.EXPIRED:
        raise TaskExpiredError(f"task {task_id!r} expired before it started")
    if result.status is ResultStatus.ERROR:
        raise TaskFailedError(task_id, result.error_type, result.error, result.traceback)
    return None


# ---------------------------------------------------------------------------------------------
def _component_from_spec(
    kind: str, spec: ComponentSpec | Mapping[str, Any], project_name: str
) -> Any:
    if isinstance(spec, Mapping):
        spec = ComponentSpec(
            type=spec.get("type"), url=spec.get("url"), config=dict(spec.get("config") or {})
        )
    options = {"project_name": project_name, **spec.config}
    backend = create_backend(spec.type, spec.url, **options)
    return _component_of(backend, kind)


def _component_of(backend: AsyncBackend, kind: str, **overrides: Any) -> Any:
    if kind == "task_queue":
        return backend.create_task_queue(**overrides) if overrides else backend.queue
    if kind == "result_store":
        return backend.result_storage
    return backend.event_storage


_SETTING_PREFIX = {
    "task_queue": "TASK_QUEUE",
    "result_store": "RESULT_STORAGE",
    "event_store": "EVENT_STORAGE",
}


def _from_settings(kind: str, project_name: str) -> Any | None:
    s = get_settings()
    type_name, url = {
        "task_queue": (s.TASK_QUEUE_TYPE, s.TASK_QUEUE_URL),
        "result_store": (s.RESULT_STORAGE_TYPE, s.RESULT_STORAGE_URL),
        "event_store": (s.EVENT_STORAGE_TYPE, s.EVENT_STORAGE_URL),
    }[kind]
    if type_name is None and url is None:
        return None
    try:
        return _component_from_spec(
            kind, ComponentSpec(type=type_name if url is None else None, url=url), project_name
        )
    except ConfigError as exc:
        # the variable, not just the value: it was set far from the code that fails on it
        setting = f"{_SETTING_PREFIX[kind]}_{'TYPE' if url is None else 'URL'}"
        value = type_name if url is None else redact_url(url)
        raise ConfigError(f"{setting_source(setting)}={value!r}: {exc}") from None


class TaskFunction(Generic[P, R]):
    """A function registered with ``@oq.task``: still callable as itself, plus ``enqueue``."""

    def __init__(
        self, func: Callable[P, R], name: str, options: dict[str, Any], app: AsyncOmniQ, sync: bool
    ) -> None:
        functools.update_wrapper(self, func)
        self.__omniq_func__ = func
        self.__omniq_name__ = name
        self.name = name
        self.options = options
        self._app = app
        self._sync = sync

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.__omniq_func__(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<task {self.name!r} -> {callable_name(self.__omniq_func__)}>"

    async def enqueue_async(self, *args: Any, **kwargs: Any) -> str:
        """Enqueues ``func(*args, **kwargs)`` with the task's registered options."""
        return await self._app.enqueue(self, args=args, kwargs=kwargs)

    def enqueue_sync(self, *args: Any, **kwargs: Any) -> str:
        result: str = run_sync(functools.partial(self.enqueue_async, *args, **kwargs))
        return result

    def enqueue(self, *args: Any, **kwargs: Any) -> Any:
        """Sync on an ``OmniQ`` app (returns the id), a coroutine on an ``AsyncOmniQ`` app."""
        if self._sync:
            return self.enqueue_sync(*args, **kwargs)
        return self.enqueue_async(*args, **kwargs)

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """This task called with ``args``/``kwargs``, to put in a workflow (``chain``, ``group``,
        ``chord``); in a chain the previous result comes first."""
        return Signature(self, args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """Like :meth:`s`, but immutable: a chain passes it no previous result."""
        return Signature(self, args, kwargs, immutable=True)

    async def enqueue_with_async(
        self, *, args: Iterable[Any] = (), kwargs: Mapping[str, Any] | None = None, **options: Any
    ) -> str:
        return await self._app.enqueue(self, args=tuple(args), kwargs=dict(kwargs or {}), **options)

    def enqueue_with(
        self, *, args: Iterable[Any] = (), kwargs: Mapping[str, Any] | None = None, **options: Any
    ) -> Any:
        """Enqueue with per-call options (``queue_name``, ``run_in``, ``priority``, ...)."""
        call = functools.partial(self.enqueue_with_async, args=args, kwargs=kwargs, **options)
        return run_sync(call) if self._sync else call()


class AsyncOmniQ(AsyncConnectable):
    """The application object. See README for the full tour."""

    def __init__(
        self,
        project_name: str | None = None,
        task_queue: BaseTaskQueue | AsyncBackend | None = None,
        result_store: BaseResultStorage | AsyncBackend | None = None,
        event_store: BaseEventStorage | AsyncBackend | None = None,
        *,
        worker_type: str | None = None,
        worker_config: Mapping[str, Any] | None = None,
        callbacks: CallbackManager | None = None,
        task_modules: str | Iterable[str] | None = None,
        allow_any_function: bool | None = None,
    ) -> None:
        settings = get_settings()
        self.project_name = project_name or settings.PROJECT_NAME
        #: modules whose functions this app's workers run (besides @task functions and what
        #: this process enqueues), and the opt-out that lets them run any importable function
        #: (see omniq.registry: anyone who can write to the broker could then run code)
        self.task_modules = module_names(task_modules)
        self.allow_any_function = allow_any_function
        #: lifecycle hooks of the workers this app starts (the process-wide
        #: ``omniq.callbacks.default_hooks`` apply as well)
        self.callbacks = callbacks if callbacks is not None else CallbackManager()
        task_queue, result_store, event_store = (
            unwrap(task_queue),
            unwrap(result_store),
            unwrap(event_store),
        )
        if isinstance(task_queue, AsyncBackend):
            task_queue = task_queue.queue
        if isinstance(result_store, AsyncBackend):
            result_store = result_store.result_storage
        if isinstance(event_store, AsyncBackend):
            event_store = event_store.event_storage
        if task_queue is None:
            task_queue = _from_settings("task_queue", self.project_name)
            if task_queue is None:  # pragma: no cover - TASK_QUEUE_TYPE always has a default
                raise ConfigError("no task queue configured")
        if result_store is None:
            result_store = (
                _from_settings("result_store", self.project_name)
                or task_queue.result_storage
                or task_queue.create_result_storage()
            )
        if event_store is None:
            event_store = _from_settings("event_store", self.project_name)
        for value, kind, base in (
            (task_queue, "task_queue", BaseTaskQueue),
            (result_store, "result_store", BaseResultStorage),
            (event_store, "event_store", BaseEventStorage),
        ):
            if value is not None and not isinstance(value, base):
                raise TypeError(f"{kind} must be a {base.__name__} or a backend, got {value!r}")
        self.task_queue: BaseTaskQueue = task_queue
        self.result_store: BaseResultStorage = result_store
        self.event_store: BaseEventStorage | None = event_store
        self.event_logger: EventLogger | None = (
            EventLogger(event_store) if event_store is not None else None
        )
        # the façade is the composition root: outcomes its queue decides go to its result store
        # and events to its logger (its workers share this queue and this wiring)
        self.task_queue.wire(result_storage=self.result_store, event_logger=self.event_logger)
        self.worker_type = worker_type or settings.DEFAULT_WORKER
        self.worker_config: dict[str, Any] = dict(worker_config or {})
        self.worker: AsyncWorker | None = None
        # queues already checked for a live worker serving them (warned about at most once)
        self._served_checked: set[str] = set()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.project_name!r} queue={self.task_queue.backend_name} "
            f"results={self.result_store.backend_name} "
            f"events={self.event_store.backend_name if self.event_store else None}>"
        )

    # aliases used by the seeds
    @property
    def result_storage(self) -> BaseResultStorage:
        return self.result_store

    @property
    def event_storage(self) -> BaseEventStorage | None:
        return self.event_store

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_backend(
        cls,
        backend: AsyncBackend,
        result_store_backend: AsyncBackend | None = None,
        event_store_backend: AsyncBackend | None = None,
        *,
        project_name: str | None = None,
        worker_type: str | None = None,
        worker_config: Mapping[str, Any] | None = None,
        events: bool = False,
        task_modules: str | Iterable[str] | None = None,
        allow_any_function: bool | None = None,
    ) -> Self:
        """One backend for everything, or separate ones for results and events. Events are on
        only when an event backend is given (or ``events=True`` to use ``backend``'s)."""
        backend = unwrap(backend)
        results = unwrap(result_store_backend) or backend
        events_backend = unwrap(event_store_backend) or (backend if events else None)
        return cls(
            project_name=project_name or backend.options.get("project_name"),
            task_queue=backend.queue,
            result_store=results.result_storage,
            event_store=events_backend.event_storage if events_backend is not None else None,
            worker_type=worker_type,
            worker_config=worker_config,
            task_modules=task_modules,
            allow_any_function=allow_any_function,
        )

    @classmethod
    def from_config(cls, config: OmniQConfig | Mapping[str, Any]) -> Self:
        from omniq.config.loader import load_config

        cfg = load_config(config)
        project = cfg.project_name
        task_queue = (
            _component_from_spec("task_queue", cfg.task_queue, project) if cfg.task_queue else None
        )
        results = (
            _component_from_spec("result_store", cfg.result_store, project)
            if cfg.result_store
            else None
        )
        events = (
            _component_from_spec("event_store", cfg.event_store, project)
            if cfg.event_store
            else None
        )
        return cls(
            project_name=project,
            task_queue=task_queue,
            result_store=results,
            event_store=events,
            worker_type=cfg.worker.type if cfg.worker else None,
            worker_config=cfg.worker.config if cfg.worker else None,
        )

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> Self:
        return cls.from_config(config)

    @classmethod
    def from_config_file(cls, path: str) -> Self:
        from omniq.config.loader import load_config

        return cls.from_config(load_config(path))  # errors name the file

    @classmethod
    def from_env(cls) -> Self:
        """Everything from ``OMNIQ_*`` variables (the same as calling the constructor bare)."""
        return cls()

    # -- lifecycle -------------------------------------------------------------------------
    async def connect(self) -> None:
        await self.task_queue.connect()
        await self.result_store.connect()
        if self.event_store is not None:
            await self.event_store.connect()

    async def close(self) -> None:
        await self.stop_worker()
        if self.event_logger is not None:
            self.task_queue.unwire(self.event_logger)
            await self.event_logger.close()
        for component in (self.task_queue, self.result_store, self.event_store):
            if component is not None:
                await component.close()

    async def health_check(self) -> dict[str, Any]:
        checks = {
            "task_queue": await self.task_queue.health_check(),
            "result_store": await self.result_store.health_check(),
        }
        if self.event_store is not None:
            checks["event_store"] = await self.event_store.health_check()
        healthy = all(c["status"] == "healthy" for c in checks.values())
        return {"status": "healthy" if healthy else "unhealthy", **checks}

    # -- tasks -----------------------------------------------------------------------------
    def task(
        self, name: str | None = None, *, sync: bool = False, **options: Any
    ) -> Callable[[Callable[P, R]], TaskFunction[P, R]]:
        """Registers a function under ``name`` (default ``module:qualname``) with default
        options (``queue_name``, ``max_retries``, ``timeout``, ...) and gives it ``.enqueue``."""
        unknown = set(options) - set(_TASK_OPTIONS)
        if unknown:
            raise TypeError(
                f"unknown task options {sorted(unknown)}; allowed: {list(_TASK_OPTIONS)}"
            )
        if "queue_name" in options:
            from omniq.queue.builder import check_allowed_queue

            check_allowed_queue(options["queue_name"], self.task_queue.queues)

        def decorate(func: Callable[P, R]) -> TaskFunction[P, R]:
            task_name = name or callable_name(func)
            registry.register(task_name, func, options)
            return TaskFunction(func, task_name, options, self, sync)

        return decorate

    async def enqueue(self, func: Callable[..., Any] | str | Task, **options: Any) -> str:
        """Enqueues a callable, a registered name / import path, or a ``Task``; returns its id.

        Options: ``args``, ``kwargs``, ``func_args``, ``queue_name``, ``priority``, ``run_at``,
        ``run_in``, ``ttl``, ``result_ttl``, ``max_retries``, ``retry_delay``, ``timeout``,
        ``task_id`` (idempotent), ``metadata``. Bad input fails here, before anything is stored.
        """
        task = self.task_queue.build_task(unwrap(func), **options)
        task_id = await self.task_queue.enqueue(task)
        await self._check_served([task.queue_name])
        return task_id

    async def enqueue_many(self, tasks: Iterable[Task | Mapping[str, Any]]) -> list[str]:
        """Many tasks in one round trip: ``Task`` objects, or dicts of ``enqueue`` options with a
        ``func`` key."""
        built = []
        for item in tasks:
            if isinstance(item, Task):
                built.append(mark_enqueued(item))
            elif isinstance(item, Mapping):
                opts = dict(item)
                try:
                    func = opts.pop("func")
                except KeyError:
                    raise TypeError(f"enqueue_many item {item!r} has no 'func'") from None
                built.append(self.task_queue.build_task(func, **opts))
            else:
                raise TypeError(f"enqueue_many takes Task objects or option dicts, got {item!r}")
        ids = await self.task_queue.enqueue_many(built)
        await self._check_served(dict.fromkeys(t.queue_name for t in built))
        return ids

    async def _check_served(self, queues: Iterable[str]) -> None:
        """Warns once per queue when the worker registry shows no live worker serving a queue a
        task was just enqueued to: such a task waits silently until one starts. A hint only:
        whatever goes wrong here never fails the enqueue."""
        unchecked = [q for q in queues if q not in self._served_checked]
        if not unchecked:
            return
        self._served_checked.update(unchecked)
        worker = self.worker
        if worker is not None and worker.is_running:
            unchecked = [q for q in unchecked if q not in worker.queues]
            if not unchecked:
                return
        try:
            workers = await self.task_queue.list_workers()
        except NotImplementedError:  # no worker registry: nothing to compare with
            return
        except Exception as exc:
            log.debug("could not read the worker registry to check queues %s: %r", unchecked, exc)
            return
        served = {q for w in workers for q in w.queues}
        for queue in unchecked:
            if queue not in served:
                log.warning(
                    "no live worker of project %r serves queue %r: its tasks wait until one does "
                    "(start one with `omniq worker --queues %s`, or oq.start_worker(queues=[%r]))",
                    self.project_name,
                    queue,
                    queue,
                    queue,
                )

    async def get_result(
        self,
        task_id: str | None = None,
        *,
        schedule_id: str | None = None,
        kind: str = "latest",
        timeout: float | None = None,
    ) -> Any:
        """The value a task returned. Waits up to ``timeout`` seconds (None: until it exists; 0:
        not at all) and returns None if there is no result by then. A task that failed, was
        cancelled or expired raises TaskFailedError / TaskCancelledError / TaskExpiredError.
        ``schedule_id=..., kind="latest"``: the latest result of a schedule (no waiting)."""
        if schedule_id is not None:
            if kind != "latest":
                raise ValueError(f"kind must be 'latest', got {kind!r}")
            latest = await self.result_store.get_latest(schedule_id)
            return result_value(latest.task_id, latest) if latest else None
        if task_id is None:
            raise TypeError("get_result needs a task_id or a schedule_id")
        return result_value(task_id, await self._wait_result(task_id, timeout))

    async def get_task_result(self, task_id: str, timeout: float | None = 0) -> TaskResult | None:
        """The full ``TaskResult`` (status, error, timings), without raising on failure (an
        unknown id raises TaskNotFound, as get_result does)."""
        return await self._wait_result(task_id, timeout)

    async def _wait_result(self, task_id: str, timeout: float | None) -> TaskResult | None:
        """Waits for a result only of a task that exists: waiting for an id nothing will ever
        answer (a typo, a purged task) would block forever with the default timeout."""
        result = await self.result_store.get(task_id)
        if result is not None or timeout == 0:
            return result
        if await self.task_queue.get_task(task_id) is None:
            # a result stored meanwhile (its task then cleaned up) still answers
            result = await self.result_store.get(task_id)
            if result is None:
                raise TaskNotFound(
                    f"no task with id {task_id!r} in project {self.project_name!r} (get_task "
                    "finds none either), so no result will ever come"
                )
            return result
        return await self.result_store.wait(task_id, timeout)

    async def get_task(self, task_id: str) -> Task | None:
        return await self.task_queue.get_task(task_id)

    async def list_tasks(
        self,
        queue: str | None = None,
        status: TaskStatus | str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Task]:
        return await self.task_queue.list_tasks(queue, status, limit, offset)

    async def cancel(self, task_id: str, *, wait: float | None = None) -> bool:
        """Cancels a task and says whether it was stopped: True for a waiting task (cancelled at
        once) and for a running one once its worker has stopped it; False when it had finished
        already, finished before its worker could stop it, or still runs after ``wait`` seconds
        (default: the queue's lease timeout; the request stands, the task stops when its worker
        sees it). A running task hears of it through the backend's cancel signal where it has
        one, else at its worker's next heartbeat. Raises TaskNotFound for an unknown id."""
        if not await self.task_queue.cancel(task_id):
            return False
        task = await self.task_queue.get_task(task_id)
        if task is None or task.status is not TaskStatus.RUNNING:
            return task is not None and task.status is TaskStatus.CANCELLED
        timeout = self.task_queue.lease_timeout if wait is None else wait
        outcome = await self.result_store.wait(task_id, timeout)
        if outcome is None:
            return False
        return outcome.status is ResultStatus.CANCELLED

    async def requeue(self, task_id: str) -> bool:
        """Puts a DEAD, CANCELLED or EXPIRED task back to PENDING. Its old outcome is removed
        first, so that ``get_result`` waits for the new run instead of answering with it."""
        task = await self.task_queue.get_task(task_id)
        if task is not None and task.status in _REQUEUEABLE:
            await self.result_store.delete(task_id)
        return await self.task_queue.requeue(task_id)

    async def list_dead(
        self, queue: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[Task]:
        return await self.task_queue.list_dead(queue, limit=limit, offset=offset)

    async def get_queue_size(self, queue: str = "default") -> int:
        return await self.task_queue.get_queue_size(queue)

    async def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"queues": await self.task_queue.stats()}
        if self.worker is not None:
            out["worker"] = self.worker.get_stats()
        return out

    async def get_events(
        self, task_id: str | None = None, event_type: EventType | str | None = None, **filters: Any
    ) -> list[TaskEvent]:
        if self.event_store is None:
            raise ConfigError("no event storage is configured (pass event_store=...)")
        if self.event_logger is not None:
            await self.event_logger.flush()
        return await self.event_store.get_events(task_id, event_type, **filters)

    async def get_results(
        self, task_ids: Iterable[str], *, timeout: float | None = None
    ) -> list[Any]:
        """The values of several tasks, in the order given (a group's results): waits for all
        of them up to ``timeout`` in total; raises as :meth:`get_result` does for the first one
        that failed; None for one with no result by then."""
        ids = list(task_ids)
        deadline = None if timeout is None else time.monotonic() + timeout
        values = []
        for task_id in ids:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            values.append(result_value(task_id, await self._wait_result(task_id, left)))
        return values

    # -- workflows -------------------------------------------------------------------------
    async def submit(self, workflow: Workflow) -> WorkflowRun:
        """Enqueues a workflow (``chain``, ``group``, ``chord``, a ``sig`` or a
        ``TaskDependencyGraph``) in one ``enqueue_many``: its tasks wait on each other through
        ``depends_on``. Returns the ids, and which of them carry the workflow's result."""
        tasks, result_ids = compile_workflow(workflow, self.task_queue.build_task)
        ids = await self.enqueue_many(tasks)
        return WorkflowRun(ids=ids, result_ids=result_ids)

    async def chain(self, *steps: Signature | Group | Chain) -> WorkflowRun:
        """Submits ``chain(*steps)``: each step gets the previous step's result first."""
        return await self.submit(Chain(*steps))

    async def group(self, *members: Signature | Iterable[Signature]) -> WorkflowRun:
        """Submits ``group(*members)``: in parallel; ``get_results(run.result_ids)`` gathers."""
        return await self.submit(Group(*members))

    async def chord(self, header: Group | Iterable[Signature], body: Signature) -> WorkflowRun:
        """Submits ``chord(header, body)``: ``body`` gets the list of the header's results."""
        return await self.submit(Chord(header, body))

    # -- workers registry ------------------------------------------------------------------
    async def list_workers(self) -> list[WorkerInfo]:
        """The workers serving this project anywhere (those that reported recently)."""
        return await self.task_queue.list_workers()

    # -- schedules -------------------------------------------------------------------------
    async def schedule(
        self,
        func: Callable[..., Any] | str,
        *,
        cron: str | None = None,
        interval: timedelta | float | None = None,
        run_at: datetime | None = None,
        run_in: timedelta | float | None = None,
        timezone: str = "UTC",
        start_at: datetime | None = None,
        end_at: datetime | None = None,
        max_runs: int | None = None,
        missed_policy: MissedRunPolicy | str = MissedRunPolicy.RUN_ONCE,
        schedule_id: str | None = None,
        ttl: timedelta | float | None = None,
        **task_options: Any,
    ) -> str:
        """Stores a cron, interval or one-shot schedule and returns its id. Task options
        (``args``, ``kwargs``, ``func_args``, ``queue_name``, ``priority``, ``max_retries``,
        ``timeout``, ``result_ttl``...) apply to every task it enqueues; ``ttl`` counts from each
        occurrence. A bad cron string, interval or time zone is refused here, naming it.

        Its keyword list is the documented API (README, seeds), so it stays spelled out here,
        the one method over ten parameters; everything behind it takes grouped values."""
        interval_s = as_seconds(interval, name="interval") if interval is not None else None
        if run_in is not None:
            if run_at is not None:
                raise TypeError("give run_at or run_in, not both")
            delay = as_seconds(run_in, name="run_in") or 0.0
            run_at = utcnow() + timedelta(seconds=delay)
        validate_timing(cron, interval_s, timezone)
        if max_runs is not None and (isinstance(max_runs, bool) or max_runs < 1):
            raise ValueError(f"max_runs must be a positive int, got {max_runs!r}")
        template = self.task_queue.build_task(unwrap(func), ttl=None, **task_options)
        options = {k: getattr(template, k) for k in _SCHEDULE_TASK_FIELDS}
        if ttl is not None:
            options["ttl"] = as_seconds(ttl, name="ttl")
        schedule = Schedule(
            func=template.func,
            args=template.args,
            kwargs=template.kwargs,
            queue_name=template.queue_name,
            cron=cron,
            interval=interval_s,
            run_at=run_at,
            timezone=timezone,
            start_at=start_at,
            end_at=end_at,
            max_runs=max_runs,
            missed_policy=MissedRunPolicy(missed_policy),
            task_options=options,
            metadata=template.metadata,
        )
        if schedule_id is not None:
            schedule.id = schedule_id
        schedule.func_obj = template.func_obj
        now = utcnow()
        # a schedule starting now (or earlier) has its first occurrence at start_at itself
        first_after = now if schedule.start_at is None else min(now, schedule.start_at - _TICK)
        schedule.next_run_at = next_occurrence(schedule, first_after)
        if schedule.next_run_at is None:
            raise ValueError("this schedule has no occurrence in the future (check run_at/end_at)")
        return await self.task_queue.save_schedule(schedule)

    async def pause_schedule(self, schedule_id: str) -> bool:
        return await self.task_queue.pause_schedule(schedule_id)

    async def resume_schedule(self, schedule_id: str) -> bool:
        return await self.task_queue.resume_schedule(schedule_id)

    async def delete_schedule(self, schedule_id: str) -> bool:
        return await self.task_queue.delete_schedule(schedule_id)

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        return await self.task_queue.get_schedule(schedule_id)

    async def list_schedules(self, state: ScheduleState | str | None = None) -> list[Schedule]:
        return await self.task_queue.list_schedules(state)

    # -- workers ---------------------------------------------------------------------------
    def create_worker(self, worker_type: str | None = None, **config: Any) -> AsyncWorker:
        from omniq.workers import worker_class

        options = {**self.worker_config, **config}
        cls = worker_class(worker_type or self.worker_type)
        options.setdefault("callbacks", self.callbacks)
        options["task_modules"] = [*self.task_modules, *module_names(options.get("task_modules"))]
        if self.allow_any_function is not None:
            options.setdefault("allow_any_function", self.allow_any_function)
        return cls(
            self.task_queue,
            self.result_store,
            self.event_store,
            event_logger=self.event_logger,
            **options,
        )

    async def start_worker(self, queues: Iterable[str] | str | None = None, **config: Any) -> None:
        """Starts a worker in the background of this loop (the sync ``OmniQ``: of its own loop)."""
        if self.worker is not None and self.worker.is_running:
            return
        if queues is not None:
            config["queues"] = queues
        self.worker = self.create_worker(**config)
        await self.worker.start()

    async def stop_worker(self, graceful: bool = True, timeout: float | None = None) -> None:
        worker, self.worker = self.worker, None
        if worker is not None:
            await worker.stop(graceful=graceful, timeout=timeout)


class AsyncTaskQueue(AsyncOmniQ):
    """The self-contained local form of seeds/004: ``AsyncTaskQueue(storage_type="memory",
    worker_type="async", max_workers=10)`` starts its own worker on first use."""

    def __init__(
        self,
        storage_type: str | None = None,
        *,
        url: str | None = None,
        worker_type: str | None = None,
        max_workers: int | None = None,
        queues: list[str] | None = None,
        project_name: str | None = None,
        auto_start: bool = True,
        **storage_options: Any,
    ) -> None:
        settings = get_settings()
        project = project_name or settings.PROJECT_NAME
        task_queue = None
        configured = settings.TASK_QUEUE_URL
        if (
            url is None
            and storage_type is not None
            and configured
            and type_from_url(configured) == normalize_type(storage_type)
        ):
            # storage_type says which backend; OMNIQ_TASK_QUEUE_URL, when it names the same
            # one, says where (a server, a database file) instead of the backend's defaults
            url = configured
        if storage_type is not None or url is not None:
            options = {"project_name": project, **storage_options}
            if queues is not None:
                options["queues"] = queues
            task_queue = _component_of(create_backend(storage_type, url, **options), "task_queue")
        config = {"max_workers": max_workers} if max_workers else {}
        super().__init__(
            project, task_queue=task_queue, worker_type=worker_type, worker_config=config
        )
        self.auto_start = auto_start

    async def _auto_start(self) -> None:
        if self.auto_start and (self.worker is None or not self.worker.is_running):
            await self.start_worker()

    async def enqueue(self, func: Callable[..., Any] | str | Task, **options: Any) -> str:
        await self._auto_start()
        return await super().enqueue(func, **options)

    async def enqueue_many(self, tasks: Iterable[Task | Mapping[str, Any]]) -> list[str]:
        await self._auto_start()
        return await super().enqueue_many(tasks)

    @classmethod
    def from_backend(  # type: ignore[override]
        cls, backend: Any, *, queues: list[str] | None = None
    ) -> Any:
        """seeds/003: ``TaskQueue.from_backend(backend, queues=[...])`` is the backend's task queue
        component (sync if the backend is sync)."""
        return (
            _pick(backend, "task_queue", queues=queues) if queues else _pick(backend, "task_queue")
        )


def _pick(backend: Any, kind: str, **overrides: Any) -> Any:
    is_sync = isinstance(backend, SyncWrapper)
    component = _component_of(unwrap(backend), kind, **overrides)
    return wrap(component) if is_sync else component


class ResultStore:
    """seeds/003: ``ResultStore.from_backend(backend)`` is the backend's result storage."""

    @staticmethod
    def from_backend(backend: Any) -> Any:
        return _pick(backend, "result_store")


class EventStore:
    """seeds/003: ``EventStore.from_backend(backend)`` is the backend's event storage."""

    @staticmethod
    def from_backend(backend: Any) -> Any:
        return _pick(backend, "event_store")


class OmniQ(SyncWrapper, async_class=AsyncOmniQ):
    """The blocking API of :class:`AsyncOmniQ`; its coroutines run on OmniQ's own loop thread,
    so ``start_worker()`` returns at once and the worker serves in the background."""

    def task(
        self, name: str | None = None, **options: Any
    ) -> Callable[[Callable[P, R]], TaskFunction[P, R]]:
        app: AsyncOmniQ = self.async_
        return app.task(name, sync=True, **options)


class TaskQueue(SyncWrapper, async_class=AsyncTaskQueue):
    """The blocking API of :class:`AsyncTaskQueue` (seeds/004)."""

    def task(
        self, name: str | None = None, **options: Any
    ) -> Callable[[Callable[P, R]], TaskFunction[P, R]]:
        app: AsyncOmniQ = self.async_
        return app.task(name, sync=True, **options)

    @classmethod
    def from_backend(cls, backend: Any, *, queues: list[str] | None = None) -> Any:
        return AsyncTaskQueue.from_backend(backend, queues=queues)


__all__ = [
    "AsyncOmniQ",
    "AsyncTaskQueue",
    "EventStore",
    "OmniQ",
    "ResultStore",
    "TaskFunction",
    "TaskQueue",
    "result_value",
]
