"""Throughput and latency harness (``uv run python -m benchmarks ...``)."""
