"""A KV bucket read and written through a :class:`~omniq.storage.nats._pipe.Pipeline`, and
compare-and-set on its entries: the one way every state change of the NATS backend is made.

A KV bucket is the stream ``KV_<bucket>``; an entry is the last message on subject
``$KV.<bucket>.<key>`` and its revision that message's sequence. So a write is a publish (with
``Nats-Expected-Last-Subject-Sequence`` for a compare-and-set, ``0`` to create) and a read a
direct get (``allow_direct``, NATS 2.9), both made here many at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, TypeVar

import msgspec
import nats.js.errors

from omniq.storage.nats._pipe import Pipeline, PubAck, Request, cas_lost, check

if TYPE_CHECKING:
    from nats.aio.msg import Msg
    from nats.js.kv import KeyValue

T = TypeVar("T")

#: How often a compare-and-set re-reads and tries again when another writer came first.
CAS_TRIES = 8
_LAST = "Nats-Expected-Last-Subject-Sequence"
_DELETED = ("DEL", "PURGE")

#: What a direct get found: (value, revision, deleted) or None (never written, or aged out).
Raw = tuple[bytes, int, bool]


async def gather(items: Iterable[Awaitable[T]]) -> list[T]:
    return list(await asyncio.gather(*items))


class Bucket:
    """One KV bucket of a connection."""

    def __init__(self, kv: KeyValue, pipe: Pipeline, direct: bool) -> None:
        self.kv = kv
        self.pipe = pipe
        self.name: str = kv._name
        self.stream: str = kv._stream
        self.prefix = f"$KV.{self.name}."
        self._direct = direct

    def subject(self, key: str) -> str:
        return self.prefix + key

    # -- reads ---------------------------------------------------------------------------------
    async def raw_many(self, keys: Sequence[str]) -> list[Raw | None]:
        if not self._direct:  # a bucket made without direct gets: the driver's own reads
            return await gather(self._raw_driver(k) for k in keys)
        api = f"$JS.API.DIRECT.GET.{self.stream}.{self.prefix}"
        replies = await self.pipe.requests([(api + k, b"", None) for k in keys])
        return [_raw(reply) for reply in replies]

    async def _raw_driver(self, key: str) -> Raw | None:
        try:
            entry = await self.kv._get(key)
        except nats.js.errors.KeyNotFoundError:
            return None
        except nats.js.errors.KeyDeletedError as gone:
            return b"", gone.entry.revision or 0, True
        return entry.value or b"", entry.revision or 0, False

    async def get_many(self, keys: Sequence[str]) -> list[tuple[bytes, int] | None]:
        """(value, revision) of each key, None where it does not exist (or was deleted)."""
        return [None if r is None or r[2] else (r[0], r[1]) for r in await self.raw_many(keys)]

    async def get(self, key: str) -> tuple[bytes, int] | None:
        return (await self.get_many([key]))[0]

    async def keys(self, pattern: str) -> list[str]:
        """The keys matching a subject ``pattern`` (``t.>``), from the bucket stream's subject
        list, page by page; keys whose last operation was a delete are included (their reads
        come back empty, and callers skip them). Not the driver's ``keys()``: it reads every key
        and matches substrings, and its watcher may report the end before the keys have come."""
        keys: list[str] = []
        offset = 0
        api = f"$JS.API.STREAM.INFO.{self.stream}"
        while True:
            body = msgspec.json.encode({"subjects_filter": self.prefix + pattern, "offset": offset})
            (reply,) = await self.pipe.requests([(api, body, None)])
            info = msgspec.json.decode(reply.data)
            if "error" in info:
                raise nats.js.errors.APIError(description=str(info["error"]))
            subjects = (info.get("state") or {}).get("subjects") or {}
            keys.extend(subject[len(self.prefix) :] for subject in subjects)
            offset += len(subjects)
            if not subjects or offset >= info.get("total", 0):
                return keys

    # -- writes --------------------------------------------------------------------------------
    async def _write(self, items: Sequence[Request]) -> list[PubAck]:
        return await self.pipe.publish(items)

    async def update_many(self, items: Sequence[tuple[str, bytes, int]]) -> list[int | None]:
        """Compare-and-sets: the new revision of each, None where the entry moved on since the
        given revision (0: where it exists)."""
        acks = await self._write([(self.subject(k), v, {_LAST: str(rev)}) for k, v, rev in items])
        return [None if cas_lost(a) else check(a) for a in acks]

    async def update(self, key: str, value: bytes, revision: int) -> int | None:
        return (await self.update_many([(key, value, revision)]))[0]

    async def create_many(self, items: Sequence[tuple[str, bytes]]) -> list[int | None]:
        """The new revision of each, None where the key exists already. A key whose last
        operation was a delete is created again over its tombstone."""
        revisions = await self.update_many([(k, v, 0) for k, v in items])
        lost = [i for i, rev in enumerate(revisions) if rev is None]
        if lost:
            found = await self.raw_many([items[i][0] for i in lost])
            again = [(i, r[1]) for i, r in zip(lost, found, strict=True) if r is not None and r[2]]
            if again:
                redo = await self.update_many([(*items[i], rev) for i, rev in again])
                for (i, _), rev in zip(again, redo, strict=True):
                    revisions[i] = rev
        return revisions

    async def create(self, key: str, value: bytes) -> int | None:
        return (await self.create_many([(key, value)]))[0]

    async def put_many(self, items: Sequence[tuple[str, bytes]]) -> list[int]:
        acks = await self._write([(self.subject(k), v, None) for k, v in items])
        return [check(a) for a in acks]

    async def put(self, key: str, value: bytes) -> int:
        return (await self.put_many([(key, value)]))[0]

    async def delete_many(self, keys: Sequence[tuple[str, int | None]]) -> list[bool]:
        """Deletes (a tombstone); with a revision, only if the entry is still at it."""
        acks = await self._write(
            [
                (
                    self.subject(k),
                    b"",
                    {"KV-Operation": "DEL", **({_LAST: str(rev)} if rev else {})},
                )
                for k, rev in keys
            ]
        )
        return [not cas_lost(a) and check(a) > 0 for a in acks]

    async def delete(self, key: str, revision: int | None = None) -> bool:
        return (await self.delete_many([(key, revision)]))[0]

    async def delete_existing(self, key: str) -> bool:
        """Deletes ``key`` if it exists; whether it did."""
        found = await self.get(key)
        return found is not None and await self.delete(key, found[1])

    # -- compare-and-set -----------------------------------------------------------------------
    async def cas_many(
        self,
        keys: Sequence[str],
        change: Callable[[int, bytes], bytes | None],
        known: Sequence[tuple[bytes, int] | None] | None = None,
    ) -> list[tuple[bytes, bytes | None, int] | None]:
        """For each key, reads it (or starts from ``known``), asks ``change(index, value)`` for
        the new value (None: leave it alone) and writes it only if nobody wrote in between,
        reading again where someone did; all keys in the same round trips. Each result is
        (value before, value written or None, revision now), or None where the key does not
        exist."""
        out: list[tuple[bytes, bytes | None, int] | None] = [None] * len(keys)
        current: list[tuple[bytes, int] | None] = list(known or [None] * len(keys))
        todo = list(range(len(keys)))
        for _ in range(CAS_TRIES):
            unread = [i for i in todo if current[i] is None]
            if unread:
                for i, found in zip(
                    unread, await self.get_many([keys[i] for i in unread]), strict=True
                ):
                    current[i] = found
            writes: list[tuple[int, bytes, bytes, int]] = []
            for i in todo:
                entry = current[i]
                if entry is None:
                    continue  # gone: out[i] stays None
                new = change(i, entry[0])
                if new is None:
                    out[i] = (entry[0], None, entry[1])
                else:
                    writes.append((i, entry[0], new, entry[1]))
            if not writes:
                return out
            revisions = await self.update_many([(keys[i], new, rev) for i, _, new, rev in writes])
            todo = []
            for (i, before, new, _), rev in zip(writes, revisions, strict=True):
                if rev is None:
                    todo.append(i)
                    current[i] = None
                else:
                    out[i] = (before, new, rev)
            if not todo:
                return out
        raise RuntimeError(
            f"KV key {keys[todo[0]]!r} kept changing under {CAS_TRIES} compare-and-set tries"
        )

    async def cas(
        self,
        key: str,
        change: Callable[[bytes], bytes | None],
        known: tuple[bytes, int] | None = None,
    ) -> tuple[bytes, bytes | None, int] | None:
        return (await self.cas_many([key], lambda _, v: change(v), [known]))[0]


def _raw(reply: Msg) -> Raw | None:
    headers = reply.headers or {}
    if not reply.data and headers.get("Status"):
        if headers["Status"] == "404":
            return None
        raise nats.js.errors.APIError(
            code=int(headers["Status"]), description=headers.get("Description", "")
        )
    revision = int(headers.get("Nats-Sequence", 0))
    return reply.data or b"", revision, headers.get("KV-Operation") in _DELETED


__all__ = ["Bucket", "gather"]
