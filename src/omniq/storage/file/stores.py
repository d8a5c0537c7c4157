"""The file result storage and event storage.

Results: ``results/r/<task id>`` (the encoded result), ``latest/<schedule id>`` (the last result
of a schedule) and, for a result with a TTL, an empty marker ``expiry/<deadline>-<task id>`` whose
name sorts by deadline, so ``cleanup()`` lists only the markers, never reads a result. Expiry is
also honoured on read (the base class refuses an expired result).

Waiting for results: every batch of results written also writes ``log/<µs>-<uuid>`` naming its
task ids. One poller per storage lists the log after the last key it saw (one LIST per poll,
however many callers wait) and wakes the waiters it names; a writer of the same process wakes them
at once. Each waiter still reads its own result every few seconds, so a clock skew between hosts
cannot make it miss one.

Events: one immutable JSON-lines object per batch written by the EventLogger,
``events/<first µs>-<last µs>-<count>-<uuid>.jsonl``; ``get_events`` reads the objects whose time
span meets the filter (each object is cached once read: they never change) and lets DuckDB do
every filter, the order and the paging.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import msgspec

from omniq._sync import SyncWrapper
from omniq._time import as_utc, utcnow
from omniq.models.event import TaskEvent
from omniq.models.result import TaskResult
from omniq.serialization import Serializer
from omniq.storage.base import BaseEventStorage, BaseResultStorage, EventQuery
from omniq.storage.file._common import Backoff, local_wake, object_store


class _FileComponent:
    """Where a component keeps its objects, and its start-up check."""

    serializer: Serializer

    def _locate(
        self,
        base_dir: str | os.PathLike[str] | None,
        storage_options: Mapping[str, Any] | None,
        project_name: str,
        area: str,
    ) -> None:
        self.objects = object_store(base_dir, storage_options)
        if self.objects.location.local_root is not None:
            # no key configured: the folder's own key signs its payloads (made on first use)
            self.serializer.use_local_key(self.objects.location.local_root / ".omniq.key")
        self.base_dir = self.objects.shown
        self._root = self.objects.key(project_name, area)
        self._wake = local_wake(self.objects)

    def server_label(self) -> str:
        return f"file store {self.base_dir}"

    async def _probe(self) -> None:
        """A store that cannot be written, a missing bucket or refused credentials fail at
        start, naming the location, not at the first result."""
        await self.objects.write(f"{self._root}/.omniq", b"omniq")


class AsyncFileResultStorage(_FileComponent, BaseResultStorage):
    backend_name = "file"
    is_local = True

    def __init__(
        self,
        *,
        base_dir: str | os.PathLike[str] | None = None,
        storage_options: Mapping[str, Any] | None = None,
        poll_interval: float = 0.05,
        max_poll_interval: float = 0.5,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self._locate(base_dir, storage_options, self.project_name, "results")
        self._poll = Backoff(poll_interval, max_poll_interval)
        self._waiting = 0
        self._poller: asyncio.Task[None] | None = None
        self._log_offset: str | None = None

    #: How often a waiter reads its own result besides the shared log poller.
    RECHECK = 5.0
    #: Log entries older than this are removed by cleanup().
    LOG_KEEP = 600.0

    async def _connect(self) -> None:
        await self._probe()

    async def _close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None

    def _key(self, task_id: str) -> str:
        return f"{self._root}/r/{task_id}"

    async def _set_many(self, items: list[tuple[TaskResult, bytes]]) -> None:
        writes = []
        for result, payload in items:
            writes.append(self.objects.write(self._key(result.task_id), payload))
            if result.expires_at is not None:
                deadline = f"{as_utc(result.expires_at).timestamp():017.6f}"
                writes.append(
                    self.objects.write(f"{self._root}/expiry/{deadline}-{result.task_id}", b"")
                )
            if result.schedule_id is not None:
                writes.append(
                    self.objects.write(f"{self._root}/latest/{result.schedule_id}", payload)
                )
        await asyncio.gather(*writes)
        # after the results, so a waiter woken through the log always finds its result
        ids = "\n".join(r.task_id for r, _ in items).encode()
        await self.objects.write(f"{self._root}/log/{_log_key(utcnow())}", ids)
        self._wake.notify({f"{self._root}:{r.task_id}" for r, _ in items})

    async def _get(self, task_id: str) -> TaskResult | None:
        found = await self.objects.read(self._key(task_id))
        if found is None:
            return None
        return self.serializer.decode_result(found[0], task_id)

    async def _get_many(self, task_ids: list[str]) -> dict[str, TaskResult]:
        found: dict[str, TaskResult] = {}
        for start in range(0, len(task_ids), 64):  # parallel reads, a bounded number at once
            chunk = task_ids[start : start + 64]
            for task_id, result in zip(
                chunk, await asyncio.gather(*(self._get(t) for t in chunk)), strict=True
            ):
                if result is not None:
                    found[task_id] = result
        return found

    async def _wait_for(self, task_id: str, timeout: float | None) -> None:
        wait = self.RECHECK if timeout is None else min(timeout, self.RECHECK)
        self._waiting += 1
        if self._poller is None or self._poller.done():
            if self._log_offset is None:  # results written a moment ago count too
                earlier = utcnow() - timedelta(seconds=self.RECHECK)
                self._log_offset = f"{self._root}/log/{_log_key(earlier)}"
            self._poll.reset()
            self._poller = asyncio.ensure_future(self._poll_log())
        try:
            await self._wake.wait([f"{self._root}:{task_id}"], wait, None)
        finally:
            self._waiting -= 1

    async def _poll_log(self) -> None:
        """Wakes this process's waiters for results other processes wrote; runs while any
        waiter waits."""
        while self._waiting > 0:
            try:
                listed = await self.objects.list(f"{self._root}/log/", self._log_offset)
            except Exception:
                listed = []  # a waiter's own recheck still runs; the next poll tries again
            if listed:
                listed.sort(key=lambda o: o["path"])
                self._log_offset = listed[-1]["path"]
                bodies = await asyncio.gather(
                    *(self.objects.read(o["path"]) for o in listed), return_exceptions=True
                )
                ids = {
                    f"{self._root}:{t}"
                    for body in bodies
                    if isinstance(body, tuple)
                    for t in body[0].decode().split("\n")
                    if t
                }
                self._wake.notify(ids)
                self._poll.reset()
            await asyncio.sleep(self._poll.next())

    async def _get_latest(self, schedule_id: str) -> TaskResult | None:
        found = await self.objects.read(f"{self._root}/latest/{schedule_id}")
        return None if found is None else self.serializer.decode_result(found[0])

    async def _delete(self, task_id: str) -> bool:
        if await self.objects.read(self._key(task_id)) is None:
            return False
        await self.objects.delete([self._key(task_id)])
        return True

    async def _cleanup(self, now: datetime) -> int:
        cutoff = now.timestamp()
        doomed: list[str] = []
        markers: list[str] = []
        for obj in await self.objects.list(f"{self._root}/expiry/"):
            name = obj["path"].rsplit("/", 1)[-1]
            deadline, _, task_id = name.partition("-")
            try:
                due = float(deadline) <= cutoff
            except ValueError:
                continue
            if due:
                markers.append(obj["path"])
                doomed.append(task_id)
        # a result stored again without a TTL after its marker was written must survive
        results = await asyncio.gather(*(self._get(t) for t in doomed))
        expired = [
            t for t, r in zip(doomed, results, strict=True) if r is not None and r.is_expired(now)
        ]
        await self.objects.delete([self._key(t) for t in expired] + markers)
        return len(expired)


class AsyncFileEventStorage(_FileComponent, BaseEventStorage):
    backend_name = "file"
    is_local = True

    def __init__(
        self,
        *,
        base_dir: str | os.PathLike[str] | None = None,
        storage_options: Mapping[str, Any] | None = None,
        cache_objects: int = 10_000,
        **options: Any,
    ) -> None:
        options.pop("secret_key", None)
        options.pop("allow_dill", None)
        super().__init__(**options)
        self._locate(base_dir, storage_options, self.project_name, "events")
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_size = cache_objects

    async def _connect(self) -> None:
        await self._probe()

    async def _log_events(self, events: list[TaskEvent]) -> None:
        first = min(e.timestamp for e in events)
        last = max(e.timestamp for e in events)
        body = b"".join(msgspec.json.encode(e) + b"\n" for e in events)
        name = f"{_us(first):016d}-{_us(last):016d}-{len(events)}-{uuid.uuid4().hex}.jsonl"
        await self.objects.write(f"{self._root}/{name}", body)

    async def _objects(self, start: datetime | None, end: datetime | None) -> list[tuple[str, int]]:
        """(path, count) of the event objects whose time span meets [start, end), in order."""
        out = []
        for obj in await self.objects.list(f"{self._root}/"):
            path = obj["path"]
            parts = path.rsplit("/", 1)[-1].split("-")
            if len(parts) != 4 or not path.endswith(".jsonl"):
                continue
            lo, hi, count = int(parts[0]), int(parts[1]), int(parts[2])
            if start is not None and hi < _us(start):
                continue
            if end is not None and lo >= _us(end):
                continue
            out.append((path, count))
        out.sort()
        return out

    async def _read(self, path: str) -> bytes:
        cached = self._cache.get(path)
        if cached is not None:
            self._cache.move_to_end(path)
            return cached
        found = await self.objects.read(path)
        body = b"" if found is None else found[0]
        self._cache[path] = body
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return body

    async def _get_events(self, query: EventQuery) -> list[TaskEvent]:
        paths = await self._objects(query.start_time, query.end_time)
        if not paths:
            return []
        bodies = await asyncio.gather(*(self._read(p) for p, _ in paths))
        lines = await asyncio.to_thread(_query, b"".join(bodies), query)
        return [msgspec.json.decode(line, type=TaskEvent) for line in lines]

    async def _cleanup_old_events(self, before: datetime) -> int:
        cutoff = _us(before)
        removed = 0
        doomed: list[str] = []
        for path, count in await self._objects(None, before):
            hi = int(path.rsplit("/", 1)[-1].split("-")[1])
            if hi < cutoff:
                doomed.append(path)
                removed += count
                continue
            # straddles the cutoff: keep its newer events in a new object
            events = [
                msgspec.json.decode(line, type=TaskEvent)
                for line in (await self._read(path)).splitlines()
                if line
            ]
            keep = [e for e in events if _us(e.timestamp) >= cutoff]
            if len(keep) < len(events):
                if keep:
                    await self._log_events(keep)
                doomed.append(path)
                removed += len(events) - len(keep)
        await self.objects.delete(doomed)
        for path in doomed:
            self._cache.pop(path, None)
        return removed


def _log_key(moment: datetime) -> str:
    return f"{_us(moment):016d}-{uuid.uuid4().hex}"


def _us(moment: datetime) -> int:
    return int(as_utc(moment).timestamp() * 1_000_000)


def _query(body: bytes, query: EventQuery) -> list[bytes]:
    """Every filter, the order and the page in DuckDB, over the events as JSON lines."""
    import duckdb

    where: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("task_id", query.task_id),
        ("queue_name", query.queue),
        ("schedule_id", query.schedule_id),
    ):
        if value is not None:
            where.append(f"json->>'{column}' = ?")
            params.append(value)
    if query.event_types is not None:
        if not query.event_types:
            return []
        where.append(f"json->>'event_type' IN ({', '.join('?' for _ in query.event_types)})")
        params.extend(t.value for t in query.event_types)
    if query.start_time is not None:
        where.append("ts >= ?")
        params.append(as_utc(query.start_time))
    if query.end_time is not None:
        where.append("ts < ?")
        params.append(as_utc(query.end_time))
    order = "DESC" if query.descending else "ASC"
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as handle:
        handle.write(body)
        handle.flush()
        sql = (
            "SELECT CAST(json AS VARCHAR) FROM ("
            " SELECT json, CAST(json->>'timestamp' AS TIMESTAMPTZ) AS ts, row_number() OVER () AS n"
            " FROM read_json_objects(?, format = 'newline_delimited'))"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + f" ORDER BY ts {order}, n {order} LIMIT ? OFFSET ?"
        )
        with duckdb.connect() as db:
            db.execute("SET TimeZone = 'UTC'")
            rows = db.execute(sql, [handle.name, *params, query.limit, query.offset]).fetchall()
    return [row[0].encode() for row in rows]


class FileResultStorage(SyncWrapper, async_class=AsyncFileResultStorage):
    """Blocking API of :class:`AsyncFileResultStorage`."""


class FileEventStorage(SyncWrapper, async_class=AsyncFileEventStorage):
    """Blocking API of :class:`AsyncFileEventStorage`."""


__all__ = [
    "AsyncFileEventStorage",
    "AsyncFileResultStorage",
    "FileEventStorage",
    "FileResultStorage",
]
