"""Rate-limit buckets and concurrency keys of the NATS task queue: one KV entry each
(``l.bucket.<key>``, ``l.slots.<key>``) in the tasks bucket, changed by compare-and-set on its
revision (see :class:`omniq.storage.base.RecordLimits`, which does the arithmetic)."""

from __future__ import annotations

from omniq.exceptions import BackendUnavailable
from omniq.storage.base.limits import Change, T
from omniq.storage.nats._conn import key_token
from omniq.storage.nats._kv import CAS_TRIES
from omniq.storage.nats._store import TaskStore

_PREFIX = "l."


def _key_of(token: str) -> str:
    """The key a :func:`key_token` was made from."""
    return bytes.fromhex(token[2:]).decode() if token.startswith("x.") else token


class Limits(TaskStore):
    """``_change_limit`` and ``_read_limits`` on the KV bucket."""

    async def _change_limit(self, kind: str, key: str, change: Change[T]) -> T:
        entry = f"{_PREFIX}{kind}.{key_token(key)}"
        async with self.guard("changing a rate or concurrency limit"):
            for _ in range(CAS_TRIES * 4):  # many workers may take tokens of one key at once
                found = await self._kv.get(entry)
                new, answer = change(None if found is None else found[0])
                if new is None:
                    return answer
                if found is None:
                    written = await self._kv.create(entry, new)
                else:
                    written = await self._kv.update(entry, new, found[1])
                if written is not None:
                    return answer
        raise BackendUnavailable(
            f"NATS: the limit {key!r} kept changing under {CAS_TRIES * 4} compare-and-set tries"
        )

    async def _read_limits(self) -> list[tuple[str, str, bytes]]:
        async with self.guard("reading the rate and concurrency limits"):
            keys = await self._kv.keys(f"{_PREFIX}>")
            values = await self._kv.get_many(keys)
        found = []
        for entry, value in zip(keys, values, strict=True):
            if value is None:
                continue
            kind, _, token = entry[len(_PREFIX) :].partition(".")
            found.append((kind, _key_of(token), value[0]))
        return found


__all__ = ["Limits"]
