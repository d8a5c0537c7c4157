"""Rate-limit buckets and concurrency keys of the file task queue: records in the state object,
so each change is a compare-and-set of that object like every other (group commit carries many
at once); :class:`omniq.storage.base.RecordLimits` does the arithmetic."""

from __future__ import annotations

from collections.abc import Callable

from omniq.storage.base.limits import Change, T
from omniq.storage.file._records import FileParts
from omniq.storage.file._state import QueueState, Txn


class FileLimits(FileParts):
    """``_change_limit`` and ``_read_limits`` on the state object."""

    async def _change_limit(self, kind: str, key: str, change: Change[T]) -> T:
        name = f"{kind}:{key}"

        def op(state: QueueState, txn: Txn) -> T:
            new, answer = change(state.limits.get(name))
            if new is not None:
                state.limits[name] = new
                txn.touch()
            return answer

        return await self.log.run(op)

    async def _read_limits(self) -> list[tuple[str, str, bytes]]:
        def op(state: QueueState, txn: Txn) -> list[tuple[str, str, bytes]]:
            return [(*name.split(":", 1), raw) for name, raw in state.limits.items()]  # type: ignore[misc]

        return await self.log.run(op)

    async def _drop_limits(self, spent: Callable[[str, bytes], bool]) -> int:
        def op(state: QueueState, txn: Txn) -> int:
            gone = [n for n, raw in state.limits.items() if spent(n.split(":", 1)[0], raw)]
            for name in gone:
                del state.limits[name]
            if gone:
                txn.touch()
            return len(gone)

        return await self.log.run(op)


__all__ = ["FileLimits"]
