"""Imported by ``omniq worker --include benchmarks.traced`` (``benchmarks.drain --tracing``): turns
OpenTelemetry tracing on in the worker, with the SDK's batch processor and an exporter that drops
the spans, so the cost measured is OmniQ's spans and the SDK's, not a collector's."""

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from benchmarks.hooks_cost import DropExporter
from omniq.observability.tracing import instrument

provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(DropExporter()))
instrument(tracer_provider=provider)
