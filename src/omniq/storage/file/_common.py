"""What the file backend's three components share: where they keep their objects, and the
process-wide wake-up of claimers and result waiters of one store."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Mapping
from typing import Any

from omniq.storage.file._store import ObjectStore, open_location

#: One ObjectStore per (base_dir, options) in this process, so that a project's queue, results
#: and events share a store (and memory:// means the same objects everywhere in the process).
_STORES: dict[tuple[str, str], ObjectStore] = {}
_LOCK = threading.Lock()


def object_store(
    base_dir: str | os.PathLike[str] | None, storage_options: Mapping[str, Any] | None
) -> ObjectStore:
    from omniq.config import get_settings

    if base_dir is None:
        settings = get_settings()
        # OMNIQ_OBSTORE_URI / OMNIQ_FSSPEC_URI (seed 003's name) say where, else ./.omniq/files
        base_dir = settings.OBSTORE_URI or settings.FSSPEC_URI or os.path.join(".omniq", "files")
    key = (os.fspath(base_dir), repr(sorted((storage_options or {}).items())))
    with _LOCK:
        found = _STORES.get(key)
        if found is None:
            found = _STORES[key] = ObjectStore(open_location(base_dir, storage_options))
        return found


class LocalWake:
    """Claimers and result waiters of this process on one store, woken by writers of this
    process at once; other processes' writes are seen by bounded back-off polling. Futures
    belong to their event loop, so a notification for another loop goes through it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: dict[str, list[asyncio.Future[None]]] = {}

    def notify(self, topics: set[str] | list[str]) -> None:
        with self._lock:
            woken = [f for t in topics for f in self._futures.pop(t, ())]
        for fut in woken:
            loop = fut.get_loop()
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if loop is running:
                _wake(fut)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(_wake, fut)

    async def wait(self, topics: list[str], timeout: float, stop: asyncio.Event | None) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            for t in topics:
                self._futures.setdefault(t, []).append(fut)
        waits: list[asyncio.Future[Any]] = [fut]
        stopper = asyncio.ensure_future(stop.wait()) if stop is not None else None
        if stopper is not None:
            waits.append(stopper)
        try:
            await asyncio.wait(
                waits, timeout=max(0.0, timeout), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            if stopper is not None:
                stopper.cancel()
            if not fut.done():
                fut.cancel()
            with self._lock:
                for t in topics:
                    found = self._futures.get(t)
                    if found and fut in found:
                        found.remove(fut)
                        if not found:
                            del self._futures[t]


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


_WAKES: dict[int, LocalWake] = {}


def local_wake(store: ObjectStore) -> LocalWake:
    with _LOCK:
        return _WAKES.setdefault(id(store), LocalWake())


class Backoff:
    """Idle polling that starts fast and settles at ``maximum``: an idle worker sends about one
    conditional read per ``maximum`` seconds, a busy one never waits for it."""

    def __init__(self, minimum: float, maximum: float) -> None:
        self.minimum = minimum
        self.maximum = max(minimum, maximum)
        self.current = minimum

    def reset(self) -> None:
        self.current = self.minimum

    def next(self) -> float:
        value = self.current
        self.current = min(self.maximum, self.current * 2)
        return value


__all__ = ["Backoff", "LocalWake", "local_wake", "object_store"]
