"""Imported by ``omniq worker --include benchmarks.traced`` (``benchmarks.drain --tracing``): turns
OpenTelemetry tracing on in the worker, with the SDK's batch processor and an exporter that drops
the spans, so the cost measured is OmniQ's spans and the SDK's, not a collector's."""

from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from omniq.observability.tracing import instrument


class DropExporter(SpanExporter):
    def __init__(self) -> None:
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.exported += len(spans)
        return SpanExportResult.SUCCESS


provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(DropExporter()))
instrument(tracer_provider=provider)
