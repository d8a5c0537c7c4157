"""Watching OmniQ from outside: Prometheus metrics (:mod:`omniq.observability.prometheus`,
``pip install omniq-tasks[metrics]``) and OpenTelemetry spans (:mod:`omniq.observability.tracing`,
``pip install omniq-tasks[otel]``).

Both are built on two process-wide hooks of :mod:`omniq.callbacks`: enqueue hooks (called with
each task before it is stored) and run wrappers (a context manager around each run, inline in the
worker, so no callback task is spawned per event as lifecycle callbacks are). Neither adds work
to a worker or an enqueue unless it is installed: with none, each path tests one empty list.
"""
