"""Compare-and-set on KV entries: the one way every state change of the NATS backend is made."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import msgspec
import nats.js.errors
from nats.js.kv import KeyValue

T = TypeVar("T")

#: How often a compare-and-set re-reads and tries again when another writer came first.
CAS_TRIES = 8


async def kv_get(kv: KeyValue, key: str) -> tuple[bytes, int] | None:
    """(value, revision), or None when the key does not exist (or was deleted)."""
    try:
        entry = await kv.get(key, validate_keys=False)
    except nats.js.errors.KeyNotFoundError:
        return None
    return (entry.value or b""), entry.revision or 0


async def kv_create(kv: KeyValue, key: str, value: bytes) -> int | None:
    """The new revision, or None when the key exists already."""
    try:
        return await kv.create(key, value, validate_keys=False)
    except nats.js.errors.KeyWrongLastSequenceError:
        return None


async def kv_update(kv: KeyValue, key: str, value: bytes, revision: int) -> int | None:
    """The new revision, or None when the entry changed since ``revision``."""
    try:
        return await kv.update(key, value, last=revision, validate_keys=False)
    except nats.js.errors.KeyWrongLastSequenceError:
        return None


async def kv_delete(kv: KeyValue, key: str, revision: int | None = None) -> bool:
    try:
        await kv.delete(key, last=revision, validate_keys=False)
    except nats.js.errors.KeyWrongLastSequenceError:
        return False
    return True


async def kv_keys(kv: KeyValue, pattern: str) -> list[str]:
    """The keys matching a subject ``pattern`` (``t.>``), from the bucket stream's subject
    list, page by page; keys whose last operation was a delete are included (their reads come
    back empty, and callers skip them). Not the driver's ``keys()``: it reads every key and
    matches substrings, and its watcher may report the end before the keys have come."""
    js = kv._js
    prefix = f"$KV.{kv._name}."
    keys: list[str] = []
    offset = 0
    while True:
        body = msgspec.json.encode({"subjects_filter": prefix + pattern, "offset": offset})
        reply = await js._nc.request(f"$JS.API.STREAM.INFO.{kv._stream}", body, timeout=js._timeout)
        info = msgspec.json.decode(reply.data)
        if "error" in info:
            raise nats.js.errors.APIError(description=str(info["error"]))
        subjects = (info.get("state") or {}).get("subjects") or {}
        keys.extend(subject[len(prefix) :] for subject in subjects)
        offset += len(subjects)
        if not subjects or offset >= info.get("total", 0):
            return keys


async def gather(items: Iterable[Awaitable[T]]) -> list[T]:
    return list(await asyncio.gather(*items))


async def cas(
    kv: KeyValue,
    key: str,
    change: Callable[[bytes], bytes | None],
    known: tuple[bytes, int] | None = None,
) -> tuple[bytes, bytes | None, int] | None:
    """Reads ``key`` (or starts from ``known``), asks ``change`` for the new value (None: leave it
    alone) and writes it only if nobody wrote in between, reading again when someone did.
    Returns (value before, value written or None, revision now), or None when the key does not
    exist."""
    current = known
    for _ in range(CAS_TRIES):
        if current is None:
            current = await kv_get(kv, key)
            if current is None:
                return None
        value, revision = current
        new = change(value)
        if new is None:
            return value, None, revision
        written = await kv_update(kv, key, new, revision)
        if written is not None:
            return value, new, written
        current = None
    raise RuntimeError(f"KV key {key!r} kept changing under {CAS_TRIES} compare-and-set tries")


__all__ = ["cas", "gather", "kv_create", "kv_delete", "kv_get", "kv_keys", "kv_update"]
