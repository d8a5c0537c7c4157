"""OpenTelemetry spans that follow a task from its enqueue to its run, across processes
(``pip install omniq-tasks[otel]``)::

    from omniq.observability.tracing import instrument

    instrument()                 # in the producers and in the workers (e.g. in the --app module)

Enqueueing makes a PRODUCER span ``enqueue <function>``, a child of whatever span is current (a web
request, say), and writes its context into the task's metadata (``task.metadata["otel"]``, W3C
``traceparent``), so it is stored with the task (an enqueue hook, :func:`omniq.callbacks.on_enqueue`).
Each attempt of the task then runs inside a CONSUMER span ``run <function>``, a child of that
enqueue span (a run wrapper, :func:`omniq.callbacks.around_run`): one trace from the request to
every attempt, whichever process or host ran it. The run span is the current span of the task's
code, async or in a thread, so the spans it opens (an HTTP call, a query) are its children; with
the process worker type the function runs in a child process, where they are not. A failed
attempt's span has status ERROR, the exception as an event and ``error.type``.
Spans go wherever the application's ``TracerProvider`` sends them (configure the SDK as usual).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, TracerProvider

from omniq.callbacks import around_run, on_enqueue, remove_enqueue_hook, remove_run_wrapper
from omniq.models.task import Task
from omniq.observability._labels import task_name

#: where the trace context travels in ``Task.metadata``
METADATA_KEY = "otel"
SYSTEM = "omniq"


class TaskTracing:
    """The spans of one process; :func:`instrument` makes and installs one."""

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        from omniq import __version__

        self.tracer = trace.get_tracer("omniq", __version__, tracer_provider=tracer_provider)

    def __repr__(self) -> str:
        return f"<TaskTracing tracer={self.tracer!r}>"

    def on_enqueue(self, task: Task) -> None:
        """The enqueue span, and its context into the task's metadata."""
        with self.tracer.start_as_current_span(
            f"enqueue {task_name(task)}",
            kind=SpanKind.PRODUCER,
            attributes=_attributes(task),
        ):
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
        if carrier:
            task.metadata[METADATA_KEY] = carrier

    @contextlib.contextmanager
    def around_run(self, task: Task) -> Iterator[None]:
        """The span of one attempt, parented by the enqueue span the task carries, current while
        the task's code runs (so the spans it opens are its children)."""
        carrier = task.metadata.get(METADATA_KEY)
        parent = propagate.extract(carrier) if isinstance(carrier, dict) else None
        attributes = _attributes(task)
        attributes["omniq.task.attempt"] = task.attempts
        if task.worker_id:
            attributes["omniq.worker.id"] = task.worker_id
        with self.tracer.start_as_current_span(
            f"run {task_name(task)}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
        ) as span:
            try:
                yield
            except Exception as exc:  # recorded (event and ERROR status) by the span itself
                span.set_attribute("error.type", type(exc).__name__)
                raise

    def install(self) -> TaskTracing:
        """Traces this process's enqueues and the runs of its workers."""
        on_enqueue(self.on_enqueue)
        around_run(self.around_run)
        return self

    def uninstall(self) -> None:
        remove_enqueue_hook(self.on_enqueue)
        remove_run_wrapper(self.around_run)


def _attributes(task: Task) -> dict[str, Any]:
    return {
        "messaging.system": SYSTEM,
        "messaging.destination.name": task.queue_name,
        "messaging.message.id": task.id,
        "omniq.task.function": task_name(task),
    }


_current: TaskTracing | None = None


def instrument(tracer_provider: TracerProvider | None = None) -> TaskTracing:
    """Turns tracing on for this process (idempotent); ``tracer_provider`` defaults to the
    global one that the OpenTelemetry SDK was configured with."""
    global _current
    if _current is None:
        _current = TaskTracing(tracer_provider)
    return _current.install()


def uninstrument() -> None:
    global _current
    if _current is not None:
        _current.uninstall()
        _current = None


__all__ = ["METADATA_KEY", "TaskTracing", "instrument", "uninstrument"]
