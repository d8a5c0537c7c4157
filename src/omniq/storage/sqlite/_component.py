"""What the three SQLite components share: where the file is and the connection they use."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from omniq.exceptions import BackendUnavailable, ConfigError
from omniq.serialization import Serializer
from omniq.storage.sqlite._db import DEFAULT_BUSY_TIMEOUT, Database, acquire, release
from omniq.storage.sqlite._schema import resolve_path


class SQLiteComponent:
    """Mixed into each SQLite component ahead of its storage interface."""

    backend_name: ClassVar[str] = "sqlite"
    is_local: ClassVar[bool] = True
    project_name: str
    serializer: Serializer

    def __init__(
        self,
        *,
        path: str | os.PathLike[str] | None = None,
        url: str | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        busy_timeout: float | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self._locate(path, url, base_dir, busy_timeout)

    def _locate(
        self,
        path: str | os.PathLike[str] | None,
        url: str | None,
        base_dir: str | os.PathLike[str] | None,
        busy_timeout: float | None,
    ) -> None:
        self.path = resolve_path(
            path=path, url=url, base_dir=base_dir, project_name=self.project_name
        )
        # no key configured: the file's own key signs its payloads (made beside it on first use)
        self.serializer.use_local_key(self.path.with_name(self.path.name + ".key"))
        timeout = DEFAULT_BUSY_TIMEOUT if busy_timeout is None else busy_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigError(f"busy_timeout must be a positive number of seconds, got {timeout!r}")
        self.busy_timeout = float(timeout)
        self._db: Database | None = None

    def _location_options(self) -> dict[str, Any]:
        """Options that open the same file (for a sibling component)."""
        return {"path": os.fspath(self.path), "busy_timeout": self.busy_timeout}

    @property
    def db(self) -> Database:
        if self._db is None:
            raise BackendUnavailable(f"SQLite storage on {str(self.path)!r} is not connected")
        return self._db

    async def _connect(self) -> None:
        self._db = await acquire(self.path, self.busy_timeout)

    async def _close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await release(db)

    async def _health(self) -> dict[str, Any]:
        db = self.db
        count = await db.run(lambda raw: raw.execute("SELECT 1").fetchone()[0])
        return {
            "path": str(self.path),
            "journal_mode": db.journal_mode,
            "schema_version": db.schema_version,
            "ok": count == 1,
        }

    def server_label(self) -> str:
        return f"SQLite at {self.path}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={str(self.path)!r}, project_name={self.project_name!r})"


__all__ = ["SQLiteComponent"]
