"""The application module of the metrics and tracing tests' worker process
(``omniq worker --app tests.integrations.observed_app:oq``), configured by OMNIQ_* variables.

With ``OBS_SPANS_FILE`` set, the process traces (``omniq.observability.tracing.instrument``) and
writes each finished span to that file as one JSON line, for the test process to read.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence

from omniq import AsyncOmniQ

oq = AsyncOmniQ()


@oq.task(name="obs.add")
async def add(x: int, y: int) -> int:
    from opentelemetry import trace

    # a span of the task's own code: the run span is its parent when tracing is on
    with trace.get_tracer("observed_app").start_as_current_span("add's own work"):
        return x + y


@oq.task(name="obs.add_sync")
def add_sync(x: int, y: int) -> int:
    from opentelemetry import trace

    with trace.get_tracer("observed_app").start_as_current_span("add_sync's own work"):
        return x + y


@oq.task(name="obs.boom", max_retries=1, retry_delay=0.01)
async def boom() -> None:
    raise ValueError("boom")


def span_record(span: object) -> dict[str, object]:
    """What the tests check of a finished SDK span."""
    from opentelemetry.sdk.trace import ReadableSpan

    assert isinstance(span, ReadableSpan)
    context, parent = span.get_span_context(), span.parent
    assert context is not None
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_id": f"{parent.span_id:016x}" if parent is not None else None,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "duration_ns": (span.end_time or 0) - (span.start_time or 0),
    }


if os.environ.get("OBS_SPANS_FILE"):
    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        SimpleSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    from omniq.observability.tracing import instrument

    class FileExporter(SpanExporter):
        def __init__(self, path: str) -> None:
            self.path = path
            self.lock = threading.Lock()

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            with self.lock, open(self.path, "a") as out:
                for span in spans:
                    out.write(json.dumps(span_record(span)) + "\n")
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(FileExporter(os.environ["OBS_SPANS_FILE"])))
    trace.set_tracer_provider(provider)  # the SDK set up as an application does
    instrument()
