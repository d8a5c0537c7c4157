"""Watching OmniQ from outside: Prometheus metrics (:mod:`omniq.observability.prometheus`,
``pip install omniq-tasks[metrics]``) and OpenTelemetry spans (:mod:`omniq.observability.tracing`,
``pip install omniq-tasks[otel]``).

Metrics are built on the lifecycle hooks every worker already runs (:mod:`omniq.callbacks`:
start, success, retry, failure); both use the process-wide enqueue hooks, and tracing the run
wrappers (a context manager around each run). Neither adds work to a worker or an enqueue unless
it is installed: with none, each path tests one empty list.
"""
