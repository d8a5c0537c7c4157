"""A task's retry policy, and its backoff arithmetic, kept once for every backend and worker.

The decision whether a failed attempt retries or ends DEAD is :func:`omniq.queue.retry.decide`;
this module holds only the data it decides from.
"""

from __future__ import annotations

import random

import msgspec


def backoff_delay(
    attempt: int, *, base: float, factor: float = 2.0, cap: float = 300.0, jitter: bool = True
) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based).

    Exponential growth capped at ``cap``; with ``jitter`` the delay is drawn uniformly from
    ``[0, exp]`` ("full jitter"), which spreads a burst of failures instead of re-synchronising it.
    """
    try:
        exp = min(cap, base * factor ** max(0, attempt - 1))
    except OverflowError:  # a very late attempt: the cap was reached long ago
        exp = cap
    if jitter:
        return random.uniform(0, exp)
    return exp


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How often a task may run again after a failure, how long it waits in between, and for
    which errors (``retry_on``: qualified or plain class names; empty: every error). A task
    stores these as its flat ``max_retries``/``retry_*`` fields (``Task.retry_policy``)."""

    max_retries: int = 0
    delay: float = 1.0
    backoff: float = 2.0
    max_delay: float = 300.0
    jitter: bool = True
    retry_on: tuple[str, ...] = ()

    @property
    def max_attempts(self) -> int:
        return self.max_retries + 1

    def delay_for(self, attempt: int) -> float:
        """Exponential backoff with optional full jitter: attempt 1 waits about ``delay``."""
        return backoff_delay(
            attempt, base=self.delay, factor=self.backoff, cap=self.max_delay, jitter=self.jitter
        )


__all__ = ["RetryPolicy", "backoff_delay"]
