"""The SQLite seam: one connection per file and event loop, the pragmas, the write lock and
checkpoints, and driver errors translated into OmniQ's own (where the file is and its migrations:
:mod:`omniq.storage.sqlite._schema`).

Durability: the database runs in WAL mode with ``synchronous=NORMAL``. A commit is then safe
against a crash of the application (or of every process using the file); only a power loss or an
OS crash can roll back the last few transactions, and never corrupts the file. That is the usual
choice for WAL and what makes batched claims and acknowledgements cheap (no fsync per commit).

Every statement of one operation runs inside one function on the connection's thread (aiosqlite's
worker thread), in one ``BEGIN IMMEDIATE`` transaction where it writes: the write lock is taken up
front (no deadlock-prone lock upgrade), held only for the few microseconds the statements take,
and never across a turn of the event loop. Components of one process that use the same file on the
same loop share one connection, so they never contend with each other for the lock. Two writes
someone waits on skip the thread when they can (:meth:`Database.write`'s ``here``: a single
enqueue, an idle worker's claim), and the sync API's single enqueue is written in the caller's
thread on a connection of its own (:meth:`Database.write_blocking`). The WAL is checkpointed
beside the writers, on a connection and thread of its own (:meth:`Database._checkpoint_soon`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from omniq import _exit
from omniq.config import get_logger
from omniq.exceptions import BackendUnavailable
from omniq.storage.sqlite._schema import FILES, check_location, migrate, resolve_path
from omniq.storage.sqlite._wake import WakeHub

try:
    import aiosqlite
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise BackendUnavailable(
        "the SQLite backend needs 'aiosqlite': pip install 'omniq-tasks[sqlite]'"
    ) from exc

log = get_logger("storage.sqlite")

T = TypeVar("T")

#: RETURNING arrived in SQLite 3.35.
MIN_SQLITE = (3, 35, 0)
DEFAULT_BUSY_TIMEOUT = 5.0

#: primary result codes that mean "the database cannot be used right now", not a bug in a query
_UNAVAILABLE = frozenset(
    getattr(sqlite3, name)
    for name in (
        "SQLITE_BUSY",
        "SQLITE_LOCKED",
        "SQLITE_READONLY",
        "SQLITE_IOERR",
        "SQLITE_CORRUPT",
        "SQLITE_FULL",
        "SQLITE_CANTOPEN",
        "SQLITE_PERM",
        "SQLITE_NOTADB",
        "SQLITE_PROTOCOL",
    )
)

#: The write lock is waited for in pauses growing from the first to the longest (see
#: :func:`with_write_lock`), not in SQLite's own 1, 2, 5, 10 ms ... steps.
_LOCK_PAUSE_FIRST = 50e-6
_LOCK_PAUSE_LONGEST = 1e-3

#: Rows a connection changes before its first checkpoint of the WAL into the database (which
#: runs on a connection and thread of its own, see :meth:`Database._checkpoint_soon`); each
#: checkpoint then scales the number so that the next finds about CHECKPOINT_PAGES pages of WAL,
#: SQLite's own default: a batch of a hundred acknowledgements changes hundreds of rows in a few
#: dozen pages, a single enqueue one row in several.
CHECKPOINT_CHANGES = 500
CHECKPOINT_PAGES = 1_000
_CHECKPOINT_CHANGES_RANGE = (1, 1_000_000)
#: SQLite's automatic checkpoint (in pages of WAL), run by whichever connection commits past it,
#: stays as a bound. The background checkpoints keep the WAL well below it while writers pause
#: now and then; under writes without a pause (a long drain) the WAL cannot start over behind a
#: checkpoint running beside the writer, and this bounds its file (16 MB of 4 KiB pages; the
#: writer's own checkpoint at SQLite's default of 1,000 let it reach about 18 MB in a drain of
#: 20,000 tasks here).
AUTOCHECKPOINT_PAGES = 4_000

#: what Database._write_here returns when another connection holds the write lock
_LOCKED = object()

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


# -- times -----------------------------------------------------------------------------------
def to_us(value: datetime | None) -> int | None:
    """An aware datetime as integer microseconds since the epoch (exact, comparable)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MICROSECOND


def from_us(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + timedelta(microseconds=value)


def _enter_wal(raw: sqlite3.Connection, busy_timeout: float) -> str:
    """Switches the file to WAL and returns the journal mode it is in.

    Switching needs an exclusive lock taken from a shared one, and SQLite answers ``SQLITE_BUSY``
    at once rather than call the busy handler there (waiting could deadlock): several processes
    opening a fresh file together would fail with "database is locked". So the switch is retried
    here, with a growing pause, for as long as the busy timeout allows.
    """
    deadline = time.monotonic() + busy_timeout
    pause = 0.001
    while True:
        try:
            return str(raw.execute("PRAGMA journal_mode=WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause * (0.5 + random.random()))
        pause = min(pause * 2, 0.05)


# -- the connection --------------------------------------------------------------------------
def _is_busy(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY


def with_write_lock(raw: sqlite3.Connection, busy_timeout: float, attempt: Callable[[], T]) -> T:
    """``attempt()``, a statement that takes the write lock before anything else and changes
    nothing when it cannot (``BEGIN IMMEDIATE``, one autocommit write), tried again in short
    pauses while another connection holds the lock, for up to ``busy_timeout`` seconds.

    SQLite's busy handler sleeps 1, 2, 5, 10 ms ... between its attempts: a transaction of
    another process that holds the lock for 100 µs cost its waiter at least 1 ms, and one that a
    busy machine descheduled for a moment 8 ms (1 + 2 + 5), which was most of the SQLite
    enqueue->start p99. So the handler is off for the attempt, and the pauses here start at
    50 µs and grow to 1 ms (a long wait costs a statement a millisecond, not a busy loop).
    """
    raw.execute("PRAGMA busy_timeout=0")
    try:
        pause = _LOCK_PAUSE_FIRST
        deadline: float | None = None
        while True:
            try:
                return attempt()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                now = time.monotonic()
                if deadline is None:
                    deadline = now + busy_timeout
                elif now >= deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 1.5, _LOCK_PAUSE_LONGEST)
    finally:
        raw.execute(f"PRAGMA busy_timeout={round(busy_timeout * 1000)}")


def in_transaction(
    raw: sqlite3.Connection,
    body: Callable[[sqlite3.Connection], T],
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
) -> T:
    """``body`` inside ``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back if it raises)."""
    with_write_lock(raw, busy_timeout, lambda: raw.execute("BEGIN IMMEDIATE"))
    return committed(raw, body)


def committed(raw: sqlite3.Connection, body: Callable[[sqlite3.Connection], T]) -> T:
    """``body`` in the transaction the caller began, then ``COMMIT``; rolled back if it raises.
    The one place that ends a write transaction, however its lock was taken."""
    try:
        out = body(raw)
    except BaseException:
        if raw.in_transaction:
            raw.execute("ROLLBACK")
        raise
    raw.execute("COMMIT")
    return out


class Database:
    """One connection to one file for one event loop, shared by every component using it."""

    def __init__(self, path: Path, busy_timeout: float) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.hub = WakeHub(path, self._find_results)
        self.schema_version = 0
        self.journal_mode = ""
        self.refs = 0
        self._conn: aiosqlite.Connection | None = None
        self._raw: sqlite3.Connection | None = None
        # the connection's total_changes at the last checkpoint, the one under way, and the
        # connection it runs on (see _checkpoint_soon)
        self._changes_checkpointed = 0
        self._checkpointing: asyncio.Future[tuple[int, int, int]] | None = None
        #: rows changed between two checkpoints (see CHECKPOINT_CHANGES)
        self.checkpoint_every = CHECKPOINT_CHANGES
        self._wal_copied = 0  # pages of WAL the last checkpoint had copied
        self._checkpointer: sqlite3.Connection | None = None
        #: calls handed to the connection's thread and not yet back (see write's ``here``)
        self._on_thread = 0
        #: whether the last write returned without letting the loop go (see write's ``here``)
        self.wrote_here = False
        # connections of other threads for write_blocking: one per thread, all closed with this
        self._lanes = threading.local()
        self._lane_connections: list[sqlite3.Connection] = []
        self._lanes_lock = threading.Lock()

    async def open(self) -> None:
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise BackendUnavailable(
                f"the SQLite backend needs SQLite >= {'.'.join(map(str, MIN_SQLITE))}, this Python "
                f"has {sqlite3.sqlite_version}"
            )
        check_location(self.path)
        try:
            # not only on its thread: a write ``here`` runs on the loop's thread while the
            # connection's thread has nothing of it (see write)
            conn = aiosqlite.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            _daemonize(conn)
            await conn
        except sqlite3.Error as exc:
            raise BackendUnavailable(
                f"cannot open SQLite database {str(self.path)!r}: {exc}"
            ) from exc
        self._conn = conn
        self._raw = conn._conn  # the sqlite3 connection, only ever used on aiosqlite's thread
        try:
            self.journal_mode, self.schema_version = await self.run(self._setup)
        except BaseException:
            await self.close()
            raise
        _exit.opened(
            self, f"SQLite database {str(self.path)!r}", self._close_at_exit, order=_exit.CONNECTION
        )

    def _setup(self, raw: sqlite3.Connection) -> tuple[str, int]:
        mode = _enter_wal(raw, self.busy_timeout)
        if str(mode).lower() != "wal":
            log.warning(
                "SQLite database %s runs in %s mode, not WAL: readers will block writers",
                self.path,
                mode,
            )
        raw.execute("PRAGMA synchronous=NORMAL")
        raw.execute("PRAGMA temp_store=MEMORY")
        raw.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
        return str(mode).lower(), migrate(raw, self.path)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Runs ``fn(connection)`` on the connection's thread in one hop.

        aiosqlite's public API takes one thread hop per statement; a transaction would then hold
        SQLite's write lock across several turns of the event loop (and of the GIL), stalling every
        other process. Its ``_execute`` runs a whole function on its thread instead.
        """
        conn, raw = self._conn, self._raw
        if conn is None or raw is None:
            raise BackendUnavailable(f"SQLite database {str(self.path)!r} is closed")

        def call(raw: sqlite3.Connection) -> tuple[T, int]:
            return fn(raw), raw.total_changes

        self._on_thread += 1
        try:
            result: T
            result, changes = await conn._execute(call, raw)  # type: ignore[no-untyped-call]
        except sqlite3.Error as exc:
            raise self._translated(exc) from exc
        finally:
            self._on_thread -= 1
        if changes - self._changes_checkpointed >= self.checkpoint_every:
            self._changes_checkpointed = changes
            self._checkpoint_soon()
        return result

    def _translated(self, exc: sqlite3.Error) -> Exception:
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF in _UNAVAILABLE:
            return BackendUnavailable(f"SQLite database {str(self.path)!r}: {exc}")
        return exc

    def _checkpoint_soon(self) -> None:
        """Copies the WAL into the database on a connection and thread of its own.

        SQLite's automatic checkpoint runs inside the commit that takes the WAL past its size,
        fsyncs included: the enqueue, claim or acknowledgement that happened to commit then
        returned milliseconds late (a wake-up sent late, the next claim queued behind it on this
        connection's thread). Here the commit returns at once and a ``PASSIVE`` checkpoint, which
        waits for no reader or writer, runs beside it, one at a time per connection.
        """
        if self._checkpointing is not None or self._raw is None:
            return
        loop = asyncio.get_running_loop()
        try:
            self._checkpointing = loop.run_in_executor(None, self._checkpoint)
        except RuntimeError:  # the loop's executor is shut down: the loop is ending
            return
        self._checkpointing.add_done_callback(self._checkpointed)

    def _checkpoint(self) -> tuple[int, int, int]:
        """On a thread of the loop's default executor, never two at once for this database:
        (busy, pages in the WAL, pages copied)."""
        side = self._checkpointer
        if side is None:
            # no busy handler: a PASSIVE checkpoint that finds another under way just skips
            side = self._checkpointer = sqlite3.connect(
                self.path, timeout=0, isolation_level=None, check_same_thread=False
            )
        ((busy, pages, copied),) = side.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        return int(busy), int(pages), int(copied)

    def _checkpointed(self, done: asyncio.Future[tuple[int, int, int]]) -> None:
        self._checkpointing = None
        if done.cancelled():
            return
        if done.exception() is not None:
            log.debug("checkpoint of %s skipped: %s", self.path, done.exception())
            return
        _, pages, copied = done.result()
        # pages written since the last checkpoint: the WAL holds those after the pages that one
        # copied, unless a writer started it over since (it is then shorter than that)
        fresh = pages - self._wal_copied if pages >= self._wal_copied else pages
        self._wal_copied = copied
        if fresh > 0:  # at most halved or quadrupled at a time: one odd checkpoint moves it little
            scale = min(4.0, max(0.5, CHECKPOINT_PAGES / fresh))
            low, high = _CHECKPOINT_CHANGES_RANGE
            self.checkpoint_every = min(high, max(low, round(self.checkpoint_every * scale)))

    async def _find_results(self, project: str, task_ids: list[str]) -> set[str]:
        ids = json.dumps(task_ids)
        rows = await self.run(
            lambda raw: raw.execute(FILES.queries["found_results"], (project, ids)).fetchall()
        )
        return {r[0] for r in rows}

    async def write(self, body: Callable[[sqlite3.Connection], T], *, here: bool = False) -> T:
        """``body`` in one ``BEGIN IMMEDIATE`` transaction on the connection's thread.

        ``here``: on the loop's own thread instead, if the connection's thread has nothing of
        this connection under way and the write lock is free at once (else on the thread, as
        without it). A hand-off to that thread and back is two thread wake-ups, each a chance
        for a loaded machine to make the call wait for a CPU: for a call someone is waiting on
        (a task just enqueued, an idle worker's claim after its wake-up) that was a good part
        of the enqueue->start latency. The loop is held only while the statements run, which
        never wait for a lock, nor fsync unless a burst of writes took the WAL past SQLite's own
        bound (AUTOCHECKPOINT_PAGES; checkpoints are the background's, see _checkpoint_soon).
        Such a write does not let the loop go:
        :attr:`wrote_here` says so, and the caller does once it has done what is urgent (sent
        the wake-up), so that one writing in a loop does not starve the loop's other tasks.
        """
        if here and not self._on_thread and self._raw is not None:
            out = self._write_here(self._raw, body)
            if out is not _LOCKED:
                self.wrote_here = True
                return out  # type: ignore[return-value]
        result = await self.run(lambda raw: in_transaction(raw, body, self.busy_timeout))
        self.wrote_here = False
        return result

    def _write_here(
        self, raw: sqlite3.Connection, body: Callable[[sqlite3.Connection], T]
    ) -> T | object:
        """``body`` in a transaction on this thread, or _LOCKED if another connection holds the
        write lock (nothing was done then)."""
        try:
            raw.execute("PRAGMA busy_timeout=0")
            try:
                raw.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if _is_busy(exc):
                    return _LOCKED
                raise
            finally:
                raw.execute(f"PRAGMA busy_timeout={round(self.busy_timeout * 1000)}")
            out = committed(raw, body)
        except sqlite3.Error as exc:
            raise self._translated(exc) from exc
        changes = raw.total_changes
        if changes - self._changes_checkpointed >= self.checkpoint_every:
            self._changes_checkpointed = changes
            self._checkpoint_soon()
        return out

    def write_blocking(self, sql: str, params: Any) -> int | None:
        """One write statement, atomic on its own, made in the calling thread (not the loop's)
        on a connection of that thread's own, the write lock waited for as
        :func:`with_write_lock` does; its row count, or None when this database is closed.

        For the sync API's enqueue: on the loop it cost a hand-off to the loop's thread, one to
        the connection's thread and back twice. Its WAL is checkpointed in the background as
        the loop connection's is (see _checkpoint_soon), asked for through the loop.
        """
        if self._raw is None:
            return None
        lane: sqlite3.Connection | None = getattr(self._lanes, "connection", None)
        try:
            if lane is None:
                lane = sqlite3.connect(
                    self.path,
                    timeout=self.busy_timeout,
                    isolation_level=None,
                    check_same_thread=False,  # closed by whoever closes this database
                )
                lane.execute("PRAGMA synchronous=NORMAL")
                lane.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
                with self._lanes_lock:
                    self._lane_connections.append(lane)
                self._lanes.connection = lane
                self._lanes.checkpointed = 0
            written = lane
            count = with_write_lock(
                written, self.busy_timeout, lambda: written.execute(sql, params).rowcount
            )
        except sqlite3.Error as exc:
            raise self._translated(exc) from exc
        changes = lane.total_changes
        if changes - self._lanes.checkpointed >= self.checkpoint_every:
            self._lanes.checkpointed = changes
            with contextlib.suppress(RuntimeError):  # the loop is closed: so is this database
                self.hub.loop.call_soon_threadsafe(self._checkpoint_soon)
        return int(count)

    async def close(self) -> None:
        _exit.closed(self)
        self.hub.close()
        conn, self._conn, self._raw = self._conn, None, None
        if conn is not None:
            await conn.close()
        if self._checkpointing is not None:
            await asyncio.wait([self._checkpointing])
        side, self._checkpointer = self._checkpointer, None
        if side is not None:
            side.close()
        with self._lanes_lock:
            lanes, self._lane_connections = self._lane_connections, []
        for lane in lanes:
            lane.close()

    async def _close_at_exit(self) -> None:
        # left open by its components: forget it so that nothing on this loop reuses it closed
        databases = _OPEN.get(asyncio.get_running_loop(), {})
        if databases.get(self.path) is self:
            del databases[self.path]
        await self.close()


def _daemonize(conn: aiosqlite.Connection) -> None:
    """aiosqlite's connection thread is not a daemon (it inherits from the thread that opens it,
    usually the main thread), and the interpreter joins every such thread before it runs its exit
    hooks: a connection nobody closed would hang exit forever. As a daemon it cannot; what is
    left open is closed on its loop by omniq._exit."""
    # aiosqlite >= 0.20 keeps its thread in ``_thread``; older versions are the thread themselves
    thread = getattr(conn, "_thread", conn)
    if isinstance(thread, threading.Thread) and not thread.is_alive():
        thread.daemon = True


# (path, loop) -> Database; weak on the loop so a closed, forgotten loop does not pin anything
_OPEN: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Path, Database]] = (
    weakref.WeakKeyDictionary()
)
_OPENING: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Path, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


async def acquire(path: Path, busy_timeout: float) -> Database:
    """The shared :class:`Database` of ``path`` on the running loop, opened on first use."""
    loop = asyncio.get_running_loop()
    lock = _OPENING.setdefault(loop, {}).setdefault(path, asyncio.Lock())
    async with lock:
        databases = _OPEN.setdefault(loop, {})
        db = databases.get(path)
        if db is None:
            db = Database(path, busy_timeout)
            await db.open()
            databases[path] = db
        db.refs += 1
        return db


async def release(db: Database) -> None:
    db.refs -= 1
    if db.refs > 0:
        return
    loop = asyncio.get_running_loop()
    databases = _OPEN.get(loop, {})
    if databases.get(db.path) is db:
        del databases[db.path]
    await db.close()


__all__ = [
    "DEFAULT_BUSY_TIMEOUT",
    "FILES",
    "Database",
    "acquire",
    "from_us",
    "in_transaction",
    "release",
    "resolve_path",
    "to_us",
    "with_write_lock",
]
