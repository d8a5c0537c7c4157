"""Prometheus metrics of tasks, queues and workers (``pip install omniq-tasks[metrics]``).

``omniq worker --metrics-port 9100`` serves them; in code::

    metrics = TaskMetrics()
    metrics.install()                      # this process's workers and enqueues are counted
    metrics.serve(9100)                    # http://host:9100/metrics
    await metrics.sample(oq)               # queue depth and live workers (the command does this
                                           # every --metrics-interval seconds)

Counters and histograms are labelled by queue and task (the function's reference). Each process
counts what happens in it: a worker its attempts, a producer its enqueues (``omniq_tasks_enqueued``
of a web app is on the web app's own endpoint when it serves one). Queue depth and the worker
count come from the store, so every process that samples sees the same numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import start_http_server

from omniq._aio import idle
from omniq.callbacks import around_run, on_enqueue, remove_enqueue_hook, remove_run_wrapper
from omniq.config import get_logger
from omniq.models.task import Task
from omniq.observability._labels import queue_wait, task_name
from omniq.queue.retry import decide

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from omniq.core import AsyncOmniQ

log = get_logger("metrics")

#: run times and waits from a millisecond to ten minutes
BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, float("inf"),
)  # fmt: skip
LABELS = ("queue", "task")


class _Series(NamedTuple):
    """The per-task metrics of one (queue, task) pair."""

    enqueued: Counter
    started: Counter
    succeeded: Counter
    failed: Counter
    retried: Counter
    dead: Counter
    duration: Histogram
    queue_wait: Histogram


class TaskMetrics:
    """The metrics of one process, in their own registry (so that two apps, or tests, never
    collide in the process-wide default one)."""

    def __init__(self, registry: CollectorRegistry | None = None, namespace: str = "omniq") -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        reg, ns = self.registry, namespace

        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, LABELS, namespace=ns, registry=reg)

        self.enqueued = counter("tasks_enqueued", "Tasks enqueued by this process")
        self.started = counter("tasks_started", "Task attempts started")
        self.succeeded = counter("tasks_succeeded", "Task attempts that succeeded")
        self.failed = counter("tasks_failed", "Task attempts that raised (retried or not)")
        self.retried = counter("tasks_retried", "Failed attempts scheduled to run again")
        self.dead = counter("tasks_dead", "Tasks out of attempts (or poison): dead-lettered")
        self.duration = Histogram(
            "task_duration_seconds",
            "Run time of a task attempt",
            LABELS,
            namespace=ns,
            registry=reg,
            buckets=BUCKETS,
        )
        self.queue_wait = Histogram(
            "task_queue_wait_seconds",
            "Time from when a task could run to its start",
            LABELS,
            namespace=ns,
            registry=reg,
            buckets=BUCKETS,
        )
        self.queue_tasks = Gauge(
            "queue_tasks", "Tasks stored per queue and status", ("queue", "status"),
            namespace=ns, registry=reg,
        )  # fmt: skip
        self.queue_depth = Gauge(
            "queue_depth", "Tasks waiting to run (pending) per queue", ("queue",),
            namespace=ns, registry=reg,
        )  # fmt: skip
        self.workers = Gauge(
            "workers", "Live workers of the project, by state", ("state",),
            namespace=ns, registry=reg,
        )  # fmt: skip
        self._series: dict[tuple[str, str], _Series] = {}
        self._sampled: set[tuple[str, ...]] = set()
        self._server: WSGIServer | None = None

    def __repr__(self) -> str:
        return f"<TaskMetrics series={len(self._series)} serving={self.port}>"

    # -- what the hooks count ------------------------------------------------------------------
    def series(self, task: Task) -> _Series:
        """The metrics of the task's queue and function, bound once per pair (a labels() lookup
        takes a lock and builds a key: five of them per task were most of the hooks' cost). All
        of a pair's series appear at once, at 0, as Prometheus prefers."""
        key = (task.queue_name, task_name(task))
        found = self._series.get(key)
        if found is None:
            found = self._series[key] = _Series(
                self.enqueued.labels(*key),
                self.started.labels(*key),
                self.succeeded.labels(*key),
                self.failed.labels(*key),
                self.retried.labels(*key),
                self.dead.labels(*key),
                self.duration.labels(*key),
                self.queue_wait.labels(*key),
            )
        return found

    def count_enqueued(self, task: Task) -> None:
        self.series(task).enqueued.inc()

    @contextlib.contextmanager
    def around_run(self, task: Task) -> Iterator[None]:
        """Counts one attempt, inline in the worker (no callback task spawned per event): its
        start and queue wait, its run time, and its outcome, retry or DEAD decided as the worker
        decides it (:func:`omniq.queue.retry.decide`). A stop or a cancel counts as neither."""
        series = self.series(task)
        series.started.inc()
        series.queue_wait.observe(queue_wait(task))
        begun = time.perf_counter()
        try:
            yield
        except Exception as exc:
            series.duration.observe(time.perf_counter() - begun)
            series.failed.inc()
            if decide(task.retry_policy, task.attempts, exc).retries:
                series.retried.inc()
            else:
                series.dead.inc()
            raise
        series.duration.observe(time.perf_counter() - begun)
        series.succeeded.inc()

    # -- installing ------------------------------------------------------------------------
    def install(self) -> TaskMetrics:
        """Counts the attempts of every worker of this process and the enqueues of this
        process."""
        on_enqueue(self.count_enqueued)
        around_run(self.around_run)
        return self

    def uninstall(self) -> None:
        remove_enqueue_hook(self.count_enqueued)
        remove_run_wrapper(self.around_run)

    # -- what the store says -----------------------------------------------------------------
    async def sample(self, app: AsyncOmniQ) -> None:
        """Reads queue sizes by status and the live workers from the store into the gauges (a
        queue or status that is gone drops to 0 rather than keeping its last value)."""
        seen: set[tuple[str, ...]] = set()
        queues: dict[str, dict[str, int]] = await app.task_queue.stats()
        for queue, counts in queues.items():
            self.queue_depth.labels(queue).set(counts.get("pending", 0))
            seen.add(("depth", queue))
            for status, count in counts.items():
                self.queue_tasks.labels(queue, status).set(count)
                seen.add(("tasks", queue, status))
        states: dict[str, int] = {}
        for info in await app.list_workers():
            states[info.state] = states.get(info.state, 0) + 1
        for state, count in states.items():
            self.workers.labels(state).set(count)
            seen.add(("workers", state))
        for key in self._sampled - seen:
            gauge = {"depth": self.queue_depth, "tasks": self.queue_tasks}.get(key[0], self.workers)
            gauge.labels(*key[1:]).set(0)
        self._sampled = seen

    async def sample_every(self, app: AsyncOmniQ, interval: float) -> None:
        """:meth:`sample` until cancelled; a store that cannot answer is logged, not fatal."""
        if interval <= 0:
            raise ValueError(f"the metrics sampling interval must be > 0 seconds, got {interval!r}")
        while True:
            try:
                await self.sample(app)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("metrics: could not sample the store (%s: %s)", type(exc).__name__, exc)
            await idle(interval)

    # -- serving -------------------------------------------------------------------------------
    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serves ``/metrics`` over HTTP from a daemon thread; returns the port (``port=0``: any
        free one)."""
        if self._server is not None:
            raise RuntimeError(f"the metrics are already served on port {self.port}")
        if not 0 <= port <= 65535:
            raise ValueError(f"metrics port must be 0-65535, got {port!r}")
        self._server, _thread = start_http_server(port, host, registry=self.registry)
        return self._server.server_port

    @property
    def port(self) -> int | None:
        return self._server.server_port if self._server is not None else None

    def close(self) -> None:
        """Stops serving and uninstalls the hooks."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        self.uninstall()

    def text(self) -> str:
        """The metrics in Prometheus's text format (what ``/metrics`` answers)."""
        return generate_latest(self.registry).decode()


@contextlib.asynccontextmanager
async def serving(
    app: AsyncOmniQ, port: int, host: str = "127.0.0.1", interval: float = 15.0
) -> AsyncIterator[TaskMetrics]:
    """The metrics of this process's workers served on ``port`` and ``app``'s store sampled every
    ``interval`` seconds, for the life of the block (what ``omniq worker --metrics-port`` runs)."""
    metrics = TaskMetrics().install()
    sampler: asyncio.Task[None] | None = None
    try:
        metrics.serve(port, host)
        sampler = asyncio.create_task(metrics.sample_every(app, interval))
        yield metrics
    finally:
        if sampler is not None:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        metrics.close()


__all__ = ["BUCKETS", "TaskMetrics", "serving"]
