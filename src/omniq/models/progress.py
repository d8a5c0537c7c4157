"""A running task's progress: how far it got, what it is doing, and a little partial data.

A task reports it with ``omniq.current_task().set_progress(0.4, note="...", data={...})``; the
worker writes it to the task's record under the task's claim, so a worker that lost its lease
cannot overwrite what the task's new holder reports. Readers see it as ``Task.progress``.

The limits are checked where the task calls, before anything is queued for the store, so that a
bad value fails in the task's own code with a message naming it, never later in the worker.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import msgspec

#: the longest note, in characters
MAX_NOTE = 1000
#: the largest progress record the store is asked to keep, encoded (note and data included):
#: progress is rewritten up to five times a second, so it stays small; a big partial result
#: belongs in the task's result
MAX_PROGRESS_BYTES = 16 * 1024


class TaskProgress(msgspec.Struct, kw_only=True, omit_defaults=True, frozen=True):
    """What a task last reported.

    ``fraction`` is 0..1; ``note`` a short text for people; ``data`` plain data (what msgpack
    carries: numbers, strings, lists, dicts, datetimes...); ``attempt`` the attempt that reported
    it (a retried task keeps its previous attempt's progress until it reports again);
    ``updated_at`` when it was reported (UTC).
    """

    fraction: float
    note: str | None = None
    data: Any = None
    attempt: int = 0
    updated_at: datetime | None = None

    @property
    def percent(self) -> float:
        return round(self.fraction * 100, 1)


def check_fraction(value: Any) -> float:
    """``value`` as a float in 0..1, or a TypeError/ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"progress must be a number from 0 to 1, got {value!r}")
    fraction = float(value)
    if not (math.isfinite(fraction) and 0.0 <= fraction <= 1.0):
        raise ValueError(f"progress must be a number from 0 to 1, got {value!r}")
    return fraction


def check_note(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"a progress note must be a string, got {value!r}")
    if len(value) > MAX_NOTE:
        raise ValueError(
            f"a progress note must be at most {MAX_NOTE} characters, got {len(value)}: "
            f"{value[:40]!r}..."
        )
    return value


__all__ = ["MAX_NOTE", "MAX_PROGRESS_BYTES", "TaskProgress", "check_fraction", "check_note"]
