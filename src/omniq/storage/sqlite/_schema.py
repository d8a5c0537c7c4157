"""Where a SQLite database file is and what schema it holds: the path from ``path=``, a URL or
``base_dir``, checked before SQLite would fail with a vague message, and the versioned migrations
applied in one transaction (several processes opening a fresh file at once apply them once).
Split from :mod:`omniq.storage.sqlite._db`, which opens the connection these run on."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from omniq._redact import redact_url
from omniq.config import get_logger, get_settings
from omniq.exceptions import BackendUnavailable, ConfigError
from omniq.storage._sql import Migration, SqlFiles

log = get_logger("storage.sqlite")

#: schema.sql, migrations/ and queries.sql under sql/ (see omniq.storage._sql)
FILES = SqlFiles("omniq.storage.sqlite", "SQLite")


# -- where the file is -----------------------------------------------------------------------
def resolve_path(
    *,
    path: str | os.PathLike[str] | None,
    url: str | None,
    base_dir: str | os.PathLike[str] | None,
    project_name: str,
) -> Path:
    """The absolute path of the database file.

    ``path`` (or ``url``) names the file, as a plain path or a URL (``sqlite:///relative.db``,
    ``sqlite:////absolute.db``); otherwise ``base_dir`` (default: settings ``BASE_DIR``) names a
    folder and the file is ``<base_dir>/<project_name>.db``.
    """
    if path is not None and url is not None and os.fspath(path) != url:
        raise ConfigError(
            f"give the SQLite database as path= or url=, not both ({os.fspath(path)!r} and "
            f"{redact_url(url)!r})"
        )
    target = os.fspath(path) if path is not None else url
    if target is not None:
        if "://" in target:
            target = _path_from_url(target)
        if target in ("", ":memory:") or target.startswith("file::memory:"):
            raise ConfigError(
                f"SQLite database {target!r}: an in-memory database cannot be shared between "
                "connections and processes; use the memory backend (memory://) instead"
            )
        return Path(os.path.abspath(os.path.expanduser(target)))
    folder = os.fspath(base_dir) if base_dir is not None else get_settings().BASE_DIR
    if "://" in folder:
        raise ConfigError(
            f"SQLite base_dir must be a local folder, got {redact_url(folder)!r}; "
            "name the file with path='sqlite:///...' instead"
        )
    return Path(os.path.abspath(os.path.expanduser(folder))) / f"{project_name}.db"


def _path_from_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("sqlite", "sqlite3"):
        raise ConfigError(f"not a SQLite URL: {redact_url(url)!r} (use sqlite:///path/to/file.db)")
    if parts.netloc:
        raise ConfigError(
            f"SQLite URL {redact_url(url)!r} names a host {parts.netloc!r}; a SQLite database "
            "is a local file: sqlite:///relative.db or sqlite:////absolute/path.db"
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"SQLite URL {redact_url(url)!r}: query options are not supported")
    # sqlite:///x.db -> "/x.db" -> "x.db" (relative); sqlite:////tmp/x.db -> "//tmp/x.db" -> "/tmp/x.db"
    return parts.path[1:] if parts.path.startswith("/") else parts.path


def check_location(path: Path) -> None:
    """Fails early, naming the path, where SQLite itself would fail with a vague message."""
    if path.is_dir():
        raise ConfigError(
            f"SQLite database path {str(path)!r} is a directory; give a file path such as "
            f"{str(path / 'omniq.db')!r}, or pass the folder as base_dir="
        )
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the folder {str(folder)!r} for SQLite database {str(path)!r}: "
            f"{exc.strerror or exc}"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(
            f"the folder {str(folder)!r} of SQLite database {str(path)!r} is not writable "
            "(SQLite creates its -wal and -shm files beside the database)"
        )
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise BackendUnavailable(
            f"SQLite database {str(path)!r} is read-only for this process; OmniQ needs to write it"
        )


# -- migrations ------------------------------------------------------------------------------
def load_migrations() -> tuple[Migration, ...]:
    """``(version, name, sql)`` from ``sql/migrations/NNNN_name.sql``, in version order."""
    return FILES.migrations


def split_statements(script: str) -> list[str]:
    """Statements of a script, for running them one by one inside our own transaction
    (``executescript`` would commit first)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in current.splitlines()
    ):
        raise RuntimeError(f"incomplete SQL statement in a migration: {current.strip()[:80]!r}")
    return statements


def migrate(raw: sqlite3.Connection, path: Path) -> int:
    """Applies pending migrations in one transaction and returns the schema version. Several
    processes connecting at once queue on ``BEGIN IMMEDIATE``; the first applies, the rest find
    nothing to do."""
    migrations = load_migrations()
    raw.execute("BEGIN IMMEDIATE")
    try:
        raw.execute(
            "CREATE TABLE IF NOT EXISTS omniq_schema_version ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        current: int = raw.execute(
            "SELECT COALESCE(MAX(version), 0) FROM omniq_schema_version"
        ).fetchone()[0]
        latest = migrations[-1][0] if migrations else 0
        if current > latest:
            raise ConfigError(
                f"SQLite database {str(path)!r} has schema version {current}, newer than this "
                f"OmniQ knows ({latest}): upgrade OmniQ"
            )
        for version, name, script in migrations:
            if version <= current:
                continue
            for statement in split_statements(script):
                raw.execute(statement)
            raw.execute(
                "INSERT INTO omniq_schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                (version, name, datetime.now(UTC).isoformat()),
            )
            log.info("SQLite database %s: applied migration %04d_%s", path, version, name)
        raw.execute("COMMIT")
    except BaseException:
        if raw.in_transaction:
            raw.execute("ROLLBACK")
        raise
    return max(current, latest)


__all__ = [
    "FILES",
    "check_location",
    "load_migrations",
    "migrate",
    "resolve_path",
    "split_statements",
]
