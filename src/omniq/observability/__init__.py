"""Watching OmniQ from outside: Prometheus metrics (:mod:`omniq.observability.prometheus`,
``pip install omniq-tasks[metrics]``) and OpenTelemetry spans (:mod:`omniq.observability.tracing`,
``pip install omniq-tasks[otel]``).

Both are built on the lifecycle hooks every worker already runs (:mod:`omniq.callbacks`:
start, success, retry, failure) and on the process-wide enqueue hooks; neither adds work to a
worker or an enqueue unless it is installed.
"""
