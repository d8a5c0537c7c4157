"""The façade: ``AsyncOmniQ`` (the implementation) and ``OmniQ`` (its sync twin).

It owns a task queue, a result storage and an optional event storage, chosen independently, and
starts workers on them. Everything here delegates to the three interfaces; nothing knows which
backend is behind them.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ParamSpec, Self, TypeVar

from omniq._components import _component_from_spec, _from_settings
from omniq._lifecycle import AsyncConnectable
from omniq._schedules import SCHEDULE_TASK_FIELDS, ScheduleMethods
from omniq._sync import SyncWrapper, check_thread, run_sync, unwrap
from omniq.backend import AsyncBackend
from omniq.callbacks import CallbackManager
from omniq.config import get_settings
from omniq.config.logging import get_logger
from omniq.events.logger import EventLogger
from omniq.exceptions import ConfigError, TaskNotFound
from omniq.models.config import OmniQConfig
from omniq.models.event import EventType, TaskEvent
from omniq.models.limits import LimitUsage, check_limit_options
from omniq.models.progress import TaskProgress
from omniq.models.result import ResultStatus, TaskResult, result_value
from omniq.models.task import Task, TaskStatus, callable_name
from omniq.models.worker import WorkerInfo
from omniq.registry import module_names, registry
from omniq.storage._breaker import connect_event_store
from omniq.storage.base import BaseEventStorage, BaseResultStorage, BaseTaskQueue, Capability
from omniq.task_function import TaskFunction
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

_REQUEUEABLE = frozenset({TaskStatus.DEAD, TaskStatus.CANCELLED, TaskStatus.EXPIRED})

log = get_logger("core")

#: the options ``@oq.task`` registers: those a schedule keeps for its tasks, plus where and how
#: long a task waits
_TASK_OPTIONS = (
    "queue_name",
    *SCHEDULE_TASK_FIELDS,
    "ttl",
    "rate_limit",
    "concurrency_key",
    "concurrency_limit",
)
_LIMIT_OPTIONS = frozenset({"rate_limit", "concurrency_key"})


class AsyncOmniQ(ScheduleMethods, AsyncConnectable):
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
            await connect_event_store(self.event_store)

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

    def breaker_state(self) -> dict[str, dict[str, Any]]:
        """The circuit breakers of this app's connections, by role (``queue``, ``results``,
        ``events``): each ``state`` (closed, open, half_open), ``failures`` in a row,
        ``opened_at``, ``server`` (no password) and ``last_error``. An open breaker makes calls
        raise :class:`~omniq.exceptions.CircuitOpen` at once until a probe finds the server."""
        states = {
            "queue": self.task_queue.breaker_state(),
            "results": self.result_store.breaker_state(),
        }
        if self.event_store is not None:
            states["events"] = self.event_store.breaker_state()
        return states

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
        check_limit_options(options)
        if _LIMIT_OPTIONS.intersection(options) and not self.task_queue.supports(Capability.LIMITS):
            raise self.task_queue._unsupported(Capability.LIMITS)

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
        func = unwrap(func)
        queue = self.task_queue
        if isinstance(func, Task):
            (task_id,) = await queue.enqueue_many([queue.build_task(func, **options)])
            if func.queue_name not in self._served_checked:
                await self._check_served([func.queue_name])
            return task_id
        return await self._enqueue_built(queue.build_task(func, **options))

    async def _enqueue_built(self, task: Task) -> str:
        (task_id,) = await self.task_queue.enqueue_built([task])
        if task.queue_name not in self._served_checked:
            await self._check_served([task.queue_name])
        return task_id

    def _enqueue_blocking(self, func: Callable[..., Any] | str | Task, **options: Any) -> str:
        """The sync API's ``enqueue``: made in the caller's thread where the task queue can
        (see ``AsyncTaskQueue.enqueue_built_blocking``: a sequential sync enqueue on Redis
        then costs no thread switch), else on OmniQ's loop like every other sync call."""
        check_thread()
        func = unwrap(func)
        if isinstance(func, Task):
            task_id: str = run_sync(functools.partial(self.enqueue, func, **options))
            return task_id
        task = self.task_queue.build_task(func, **options)
        if task.queue_name in self._served_checked:
            done = self.task_queue.enqueue_built_blocking(task)
            if done is not None:
                return done
        task_id = run_sync(self._enqueue_built, task)
        return task_id

    async def enqueue_many(self, tasks: Iterable[Task | Mapping[str, Any]]) -> list[str]:
        """Many tasks in one round trip: ``Task`` objects, or dicts of ``enqueue`` options with a
        ``func`` key."""
        built = []
        given = False  # any ready-made Task: those are checked (build_task checked the rest)
        for item in tasks:
            if isinstance(item, Task):
                built.append(self.task_queue.build_task(item))
                given = True
            elif isinstance(item, Mapping):
                opts = dict(item)
                try:
                    func = opts.pop("func")
                except KeyError:
                    raise TypeError(f"enqueue_many item {item!r} has no 'func'") from None
                built.append(self.task_queue.build_task(func, **opts))
            else:
                raise TypeError(f"enqueue_many takes Task objects or option dicts, got {item!r}")
        queue = self.task_queue
        ids = await (queue.enqueue_many(built) if given else queue.enqueue_built(built))
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

    async def get_progress(self, task_id: str) -> TaskProgress | None:
        """What task ``task_id`` last reported with ``omniq.current_task().set_progress`` (None:
        nothing yet); TaskNotFound for an unknown id. It is also ``get_task(id).progress``."""
        task = await self.task_queue.get_task(task_id)
        if task is None:
            raise TaskNotFound(f"no task with id {task_id!r} in project {self.project_name!r}")
        return task.progress

    async def limit_usage(self) -> LimitUsage:
        """The rate-limit buckets and concurrency keys shared by this project's workers, as of
        now (``omniq info`` shows them)."""
        return await self.task_queue.limit_usage()

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


class OmniQ(SyncWrapper, async_class=AsyncOmniQ):
    """The blocking API of :class:`AsyncOmniQ`; its coroutines run on OmniQ's own loop thread,
    so ``start_worker()`` returns at once and the worker serves in the background."""

    def task(
        self, name: str | None = None, **options: Any
    ) -> Callable[[Callable[P, R]], TaskFunction[P, R]]:
        app: AsyncOmniQ = self.async_
        return app.task(name, sync=True, **options)

    def enqueue(self, func: Callable[..., Any] | str | Task, **options: Any) -> str:
        """Enqueues a callable, a registered name / import path, or a ``Task``; returns its id
        (see :meth:`AsyncOmniQ.enqueue`)."""
        app: AsyncOmniQ = self.async_
        return app._enqueue_blocking(func, **{k: unwrap(v) for k, v in options.items()})

    enqueue_sync = enqueue


__all__ = ["AsyncOmniQ", "OmniQ", "TaskFunction", "result_value"]
