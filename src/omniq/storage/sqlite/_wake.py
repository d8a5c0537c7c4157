"""Wake-ups between processes sharing one SQLite file, without polling the database.

SQLite has no LISTEN/NOTIFY. Instead every process (more exactly: every event loop) that waits on a
database binds one Unix datagram socket in a *wake folder* beside it (``<db>.wake/<pid>-<rand>.sock``).
A writer that makes a task ready (enqueue, retry, release, requeue, lease recovery) or stores a
result sends one small datagram to every socket in that folder after its transaction commits;
sockets whose owner died are removed on the way. In-process waiters are woken directly through
futures. A bounded safety re-check (:data:`SAFETY_RECHECK`) covers a datagram lost to a full socket
buffer, and platforms without Unix datagram sockets fall back to it alone.

Datagrams say what changed: ``t`` + queue names, or ``r`` + task ids of new results, so a process
with thousands of result waiters wakes only the ones concerned. A bare ``t``/``r`` wakes everyone.
``c`` + task ids says that the cancellation of those running tasks was requested: workers stop
them at once instead of at their next heartbeat.

Races are closed with generation counters: a claimer or reader notes the generation before it
looks at the database, and its wait returns at once if a notification arrived since (even one
that arrived before the wait registered its future).

Result waiters are re-checked together: while any wait, one query per :data:`SAFETY_RECHECK`
looks for all their results at once, so thousands of ``get_result`` calls cost one query a second,
not one each. A result written in this process is handed to its waiters with the wake-up, so
they need not read it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import socket
import tempfile
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path

from omniq.config import get_logger

log = get_logger("storage.sqlite")

#: Longest sleep of an idle waiter between two looks at the database: bounds the delay a lost
#: datagram can cause. Never a tight poll: a waiter normally wakes on a datagram or a future.
SAFETY_RECHECK = 1.0

#: Datagrams larger than this carry no names (wake everyone), far below Linux's default limit.
_MAX_DATAGRAM = 48_000
#: How many recently notified task ids are remembered for waiters that registered late.
_RECENT_RESULTS = 8_192
#: ``sun_path`` holds 108 bytes on Linux, 104 on macOS; keep room for the socket's own name.
_MAX_SOCKET_PATH = 100
_KIND_TASKS = b"t"
_KIND_RESULTS = b"r"
_KIND_CANCELS = b"c"

#: ``(project, task_ids) -> the ids among them that have a result``: the batched re-check.
ResultFinder = Callable[[str, list[str]], Awaitable[set[str]]]


def wake_folder(db_path: Path) -> Path:
    """``<db>.wake`` beside the database, or a folder under the temp dir named after the
    database's path when that would make socket paths too long for the OS."""
    beside = db_path.with_name(db_path.name + ".wake")
    if len(os.fsencode(beside)) + 24 <= _MAX_SOCKET_PATH:
        return beside
    digest = hashlib.sha256(os.fsencode(db_path)).hexdigest()[:24]
    return Path(tempfile.gettempdir()) / "omniq-wake" / digest


class WakeHub:
    """Waiters and notifications of one database on one event loop."""

    def __init__(self, db_path: Path, find_results: ResultFinder) -> None:
        self.folder = wake_folder(db_path)
        self._find_results = find_results
        self.task_gen = 0
        self.result_gen = 0
        self._loop = asyncio.get_running_loop()
        #: set once a claimer of this loop looked at the database: from then on a task written
        #: by another thread of this process must wake this loop (see notify_tasks_threadsafe)
        self.claimers = False
        self._task_waiters: list[tuple[frozenset[str], asyncio.Future[None]]] = []
        self._result_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._result_projects: dict[str, str] = {}
        self._recheck: asyncio.Task[None] | None = None
        # payloads written by this process, kept for the waiter that reads them next
        self._handoff: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._recent_results: OrderedDict[str, int] = OrderedDict()
        self._wake_all_results_gen = 0
        self._sock: socket.socket | None = None
        self._sock_path: Path | None = None
        self._listen_failed = False
        self._sender: socket.socket | None = None
        self._cancel_listeners: set[Callable[[str], None]] = set()

    # -- listening -------------------------------------------------------------------------
    def listen(self) -> bool:
        """Binds this loop's socket if not yet done. True when it was bound just now: the caller
        must look at the database once more, since a writer may have listed the folder before
        the socket existed."""
        if self._sock is not None or self._listen_failed:
            return False
        if not hasattr(socket, "AF_UNIX"):
            self._listen_failed = True
            return False
        path = self.folder / f"{os.getpid()}-{secrets.token_hex(4)}.sock"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            sock.setblocking(False)
            sock.bind(os.fspath(path))
            self._loop.add_reader(sock.fileno(), self._on_readable)
        except (OSError, NotImplementedError) as exc:
            sock.close()
            self._listen_failed = True
            log.warning(
                "no cross-process wake-ups for %s (%s); waiters re-check every %.1fs instead",
                self.folder,
                exc,
                SAFETY_RECHECK,
            )
            return False
        self._sock, self._sock_path = sock, path
        return True

    def close(self) -> None:
        if self._recheck is not None:
            self._recheck.cancel()
            self._recheck = None
        self._handoff.clear()
        for _, fut in self._task_waiters:
            if not fut.done():
                fut.set_result(None)
        for futures in self._result_waiters.values():
            for fut in futures:
                if not fut.done():
                    fut.set_result(None)
        self._task_waiters.clear()
        self._result_waiters.clear()
        self._result_projects.clear()
        self._cancel_listeners.clear()
        if self._sock is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        if self._sock_path is not None:
            with contextlib.suppress(OSError):
                self._sock_path.unlink()
            self._sock_path = None
        if self._sender is not None:
            self._sender.close()
            self._sender = None

    def _on_readable(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(65_536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if not data:
                continue
            kind, body = data[:1], data[1:]
            names = body.decode("utf-8", "replace").split("\n") if body else None
            if kind == _KIND_TASKS:
                self._wake_tasks(names)
            elif kind == _KIND_RESULTS:
                self._wake_results(names)
            elif kind == _KIND_CANCELS and names:
                self._deliver_cancels(names)

    # -- notifying -------------------------------------------------------------------------
    def notify_tasks(self, queues: Iterable[str]) -> None:
        """Tasks may be ready (or a delayed one was added) in ``queues``: wake claimers here and
        in every other process."""
        names = sorted(set(queues))
        self._wake_tasks(names)
        self._send(_KIND_TASKS, names)

    def notify_tasks_threadsafe(self, queues: list[str]) -> None:
        """:meth:`notify_tasks` from a thread other than the loop's (a task written there): the
        datagrams go from here, this loop's own claimers are woken through the loop."""
        self._send(_KIND_TASKS, queues)
        if self.claimers:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                self._loop.call_soon_threadsafe(self._wake_tasks, queues)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def notify_results(self, project: str, written: Sequence[tuple[str, bytes]]) -> None:
        """Results ``(task_id, payload)`` of ``project`` were committed by this process."""
        if not written:
            return
        if self._result_waiters:
            for task_id, payload in written:
                if task_id in self._result_waiters:
                    self._handoff[(project, task_id)] = payload
            while len(self._handoff) > _RECENT_RESULTS:
                self._handoff.popitem(last=False)
        ids = [task_id for task_id, _ in written]
        self._wake_results(ids)
        self._send(_KIND_RESULTS, ids)

    def notify_cancels(self, task_ids: Sequence[str]) -> None:
        """The cancellation of running tasks ``task_ids`` was requested: tell the workers here and
        in every other process (each stops those it runs)."""
        self._deliver_cancels(list(task_ids))
        self._send(_KIND_CANCELS, list(task_ids))

    def add_cancel_listener(self, listener: Callable[[str], None]) -> None:
        """``listener(task_id)`` for every cancellation requested from now on."""
        self.listen()
        self._cancel_listeners.add(listener)

    def remove_cancel_listener(self, listener: Callable[[str], None]) -> None:
        self._cancel_listeners.discard(listener)

    def _deliver_cancels(self, task_ids: list[str]) -> None:
        for listener in list(self._cancel_listeners):
            for task_id in task_ids:
                listener(task_id)

    def take_handoff(self, project: str, task_id: str) -> bytes | None:
        """The payload this process just wrote for ``task_id``, once, if a waiter was woken."""
        if not self._handoff:
            return None
        return self._handoff.pop((project, task_id), None)

    def _wake_tasks(self, queues: list[str] | None) -> None:
        self.task_gen += 1
        if not self._task_waiters:
            return
        keep = []
        for wanted, fut in self._task_waiters:
            if queues is None or not wanted.isdisjoint(queues):
                if not fut.done():
                    fut.set_result(None)
            elif not fut.done():
                keep.append((wanted, fut))
        self._task_waiters = keep

    def _wake_results(self, task_ids: list[str] | None) -> None:
        self.result_gen += 1
        gen = self.result_gen
        if task_ids is None:
            self._wake_all_results_gen = gen
            waiting = list(self._result_waiters)
        else:
            recent = self._recent_results
            for task_id in task_ids:
                recent[task_id] = gen
                recent.move_to_end(task_id)
            while len(recent) > _RECENT_RESULTS:
                recent.popitem(last=False)
            waiting = [t for t in task_ids if t in self._result_waiters]
        for task_id in waiting:
            for fut in self._result_waiters.pop(task_id, ()):
                if not fut.done():
                    fut.set_result(None)

    def _send(self, kind: bytes, names: list[str]) -> None:
        try:
            entries = os.listdir(self.folder)
        except OSError:
            return
        own = self._sock_path.name if self._sock_path is not None else None
        targets = [e for e in entries if e.endswith(".sock") and e != own]
        if not targets:
            return
        body = "\n".join(names).encode()
        message = kind + body if len(body) <= _MAX_DATAGRAM else kind
        if self._sender is None:
            self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sender.setblocking(False)
        for entry in targets:
            target = os.path.join(self.folder, entry)
            try:
                self._sender.sendto(message, target)
            except (BlockingIOError, InterruptedError):
                continue  # its buffer is full of wake-ups already: it will wake
            except (ConnectionRefusedError, FileNotFoundError):
                # nobody listens there any more (a process that died): tidy up
                with contextlib.suppress(OSError):
                    os.unlink(target)
            except OSError as exc:
                log.debug("wake-up to %s failed: %s", target, exc)

    # -- waiting ---------------------------------------------------------------------------
    async def wait_tasks(
        self, queues: Iterable[str], timeout: float, stop: asyncio.Event | None, since: int
    ) -> None:
        """Waits for a task notification about ``queues``, ``stop`` or ``timeout``. Returns at
        once if any notification arrived after generation ``since``."""
        if self.task_gen != since:
            return
        fut: asyncio.Future[None] = self._loop.create_future()
        item = (frozenset(queues), fut)
        self._task_waiters.append(item)
        try:
            await _wait_one(fut, stop, timeout)
        finally:
            if not fut.done():
                fut.cancel()
            with contextlib.suppress(ValueError):
                self._task_waiters.remove(item)

    def result_notified_since(self, task_id: str, since: int) -> bool:
        return self._wake_all_results_gen > since or self._recent_results.get(task_id, 0) > since

    async def wait_result(self, project: str, task_id: str, timeout: float | None) -> None:
        fut: asyncio.Future[None] = self._loop.create_future()
        waiters = self._result_waiters.setdefault(task_id, [])
        waiters.append(fut)
        self._result_projects[task_id] = project
        if self._recheck is None:
            self._recheck = self._loop.create_task(self._recheck_results())
        try:
            await _wait_one(fut, None, timeout)
        finally:
            if not fut.done():
                fut.cancel()
            current = self._result_waiters.get(task_id)
            if current is not None:
                with contextlib.suppress(ValueError):
                    current.remove(fut)
                if not current:
                    del self._result_waiters[task_id]
            if task_id not in self._result_waiters:
                self._result_projects.pop(task_id, None)

    async def _recheck_results(self) -> None:
        """While results are awaited: one query a second finds any result whose wake-up was
        lost (a full socket buffer, a platform without Unix sockets)."""
        try:
            while self._result_waiters:
                await asyncio.sleep(SAFETY_RECHECK)
                by_project: dict[str, list[str]] = {}
                for task_id in self._result_waiters:
                    project = self._result_projects.get(task_id, "")
                    by_project.setdefault(project, []).append(task_id)
                for project, ids in by_project.items():
                    try:
                        found = await self._find_results(project, ids)
                    except Exception as exc:  # closed or unavailable: the waits time out
                        log.debug("result re-check on %s failed: %s", self.folder, exc)
                        return
                    for task_id in found:
                        for fut in self._result_waiters.pop(task_id, ()):
                            if not fut.done():
                                fut.set_result(None)
        finally:
            self._recheck = None


async def _wait_one(
    fut: asyncio.Future[None], stop: asyncio.Event | None, timeout: float | None
) -> None:
    if stop is None:
        await asyncio.wait((fut,), timeout=timeout)
        return
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((fut, stopper), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()


__all__ = ["SAFETY_RECHECK", "WakeHub", "wake_folder"]
