"""OpenTelemetry spans that follow a task from its enqueue to its run, across processes
(``pip install omniq-tasks[otel]``)::

    from omniq.observability.tracing import instrument

    instrument()                 # in the producers and in the workers (e.g. in the --app module)

Enqueueing makes a PRODUCER span ``enqueue <function>``, a child of whatever span is current (a web
request, say), and writes its context into the task's metadata (``task.metadata["otel"]``, W3C
``traceparent``), so it is stored with the task. Each attempt of the task then makes a CONSUMER
span ``run <function>`` in the worker, a child of that enqueue span: one trace from the request to
every attempt, whichever process or host ran it. A failed attempt's span has status ERROR and the
error's type and message.

The run span is recorded from the worker's lifecycle hooks once the attempt has ended (with its
real start and end times), so spans that the task's own code opens are not nested under it.
Spans go wherever the application's ``TracerProvider`` sends them (configure the SDK as usual).
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider

from omniq.callbacks import (
    CallbackManager,
    TaskOutcome,
    default_hooks,
    on_enqueue,
    remove_enqueue_hook,
)
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
        self._installed: list[CallbackManager] = []

    def __repr__(self) -> str:
        return f"<TaskTracing installed={len(self._installed)}>"

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

    async def on_attempt_end(self, outcome: TaskOutcome) -> None:
        """The span of one attempt, parented by the enqueue span the task carries."""
        task = outcome.task
        carrier = task.metadata.get(METADATA_KEY)
        parent = propagate.extract(carrier) if isinstance(carrier, dict) else None
        end = time.time_ns()
        start = end - int((outcome.duration or 0.0) * 1e9)
        attributes = {
            **_attributes(task),
            "omniq.task.attempt": task.attempts,
            "omniq.worker.id": outcome.worker_id,
            "omniq.outcome": outcome.event,
        }
        span = self.tracer.start_span(
            f"run {task_name(task)}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            start_time=start,
        )
        if outcome.event != "success":
            if outcome.error_type:
                span.set_attribute("error.type", outcome.error_type)
            span.set_status(
                Status(StatusCode.ERROR, f"{outcome.error_type}: {outcome.error_message}")
            )
        span.end(end_time=end)

    def install(self, callbacks: CallbackManager = default_hooks) -> TaskTracing:
        """Traces this process's enqueues and the attempts of the workers that run
        ``callbacks`` (by default every worker of the process)."""
        if callbacks not in self._installed:
            for event in ("success", "retry", "failure"):
                callbacks.on(event, self.on_attempt_end)
            self._installed.append(callbacks)
        on_enqueue(self.on_enqueue)
        return self

    def uninstall(self) -> None:
        for callbacks in self._installed:
            for event in ("success", "retry", "failure"):
                callbacks.remove(event, self.on_attempt_end)
        self._installed.clear()
        remove_enqueue_hook(self.on_enqueue)


def _attributes(task: Task) -> dict[str, Any]:
    return {
        "messaging.system": SYSTEM,
        "messaging.destination.name": task.queue_name,
        "messaging.message.id": task.id,
        "omniq.task.function": task_name(task),
    }


_current: TaskTracing | None = None


def instrument(
    callbacks: CallbackManager = default_hooks, tracer_provider: TracerProvider | None = None
) -> TaskTracing:
    """Turns tracing on for this process (idempotent); ``tracer_provider`` defaults to the
    global one that the OpenTelemetry SDK was configured with."""
    global _current
    if _current is None:
        _current = TaskTracing(tracer_provider)
    return _current.install(callbacks)


def uninstrument() -> None:
    global _current
    if _current is not None:
        _current.uninstall()
        _current = None


__all__ = ["METADATA_KEY", "TaskTracing", "instrument", "uninstrument"]
