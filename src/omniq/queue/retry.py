"""Retry backoff, kept once for every backend and worker type (the arithmetic lives beside the
policy it reads, in :mod:`omniq.models.retry`)."""

from __future__ import annotations

from omniq.models.retry import RetryPolicy, backoff_delay

__all__ = ["RetryPolicy", "backoff_delay"]
