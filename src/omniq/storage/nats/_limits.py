"""Rate-limit buckets and concurrency keys of the NATS task queue: one KV entry each
(``l.bucket.<key>``, ``l.slots.<key>``) in the tasks bucket, changed by compare-and-set on its
revision (see :class:`omniq.storage.base.RecordLimits`, which does the arithmetic)."""

from __future__ import annotations

from collections.abc import Callable

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

    async def _drop_limits(self, spent: Callable[[str, bytes], bool]) -> int:
        """Purges each spent entry up to its revision as read: a write made since (a new
        revision) survives, and nothing is left behind, not even the tombstone a KV delete
        leaves (one per key would still grow without bound)."""
        async with self.guard("sweeping the rate and concurrency limits"):
            keys = await self._kv.keys(f"{_PREFIX}>")
            found = await self._kv.raw_many(keys)
            gone = 0
            for entry, raw in zip(keys, found, strict=True):
                if raw is None:
                    continue
                value, revision, deleted = raw
                if not deleted and not spent(entry[len(_PREFIX) :].partition(".")[0], value):
                    continue
                await self.jetstream.purge_stream(
                    self._kv.stream, seq=revision + 1, subject=self._kv.subject(entry)
                )
                gone += not deleted
        return gone


__all__ = ["Limits"]
