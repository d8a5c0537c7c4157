"""Rate limits and key concurrency for the memory backend: records in this process's dict.

A change runs without an ``await``, which makes it atomic on the event loop (the limits hold
across the workers of this process, the only ones a memory queue has)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omniq.storage.base import RecordLimits
from omniq.storage.base.limits import Change, T


class InProcessLimits(RecordLimits):
    """Limit records in a dict (see :class:`RecordLimits`)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._limit_records: dict[tuple[str, str], bytes] = {}

    async def _change_limit(self, kind: str, key: str, change: Change[T]) -> T:
        new, answer = change(self._limit_records.get((kind, key)))
        if new is not None:
            self._limit_records[(kind, key)] = new
        return answer

    async def _read_limits(self) -> list[tuple[str, str, bytes]]:
        return [(kind, key, raw) for (kind, key), raw in self._limit_records.items()]

    async def _drop_limits(self, spent: Callable[[str, bytes], bool]) -> int:
        gone = [name for name, raw in self._limit_records.items() if spent(name[0], raw)]
        for name in gone:
            del self._limit_records[name]
        return len(gone)
