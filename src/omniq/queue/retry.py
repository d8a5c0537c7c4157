"""Retry backoff, kept once for every backend and worker type."""

from __future__ import annotations

import random


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
