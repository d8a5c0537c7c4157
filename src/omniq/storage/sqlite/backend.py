"""The SQLite backend bundle: tasks, results and events in one local file.

``SQLiteBackend(project_name="my_project", base_dir="some/path")`` keeps everything in
``some/path/my_project.db``; ``create_backend(url="sqlite:///path/to/file.db")`` names the file.
Results share the queue's file, so a completion writes the result and the acknowledgement in one
transaction.
"""

from __future__ import annotations

from typing import Any

from omniq._sync import SyncWrapper
from omniq.backend.base import AsyncBackend
from omniq.storage.sqlite.events import AsyncSQLiteEventStorage
from omniq.storage.sqlite.queue import AsyncSQLiteQueue
from omniq.storage.sqlite.results import AsyncSQLiteResultStorage


class AsyncSQLiteBackend(AsyncBackend):
    name = "sqlite"
    task_queue_class = AsyncSQLiteQueue
    result_storage_class = AsyncSQLiteResultStorage
    event_storage_class = AsyncSQLiteEventStorage

    @classmethod
    def from_url(cls, url: str, /, **options: Any) -> AsyncSQLiteBackend:
        """``sqlite:///relative/file.db`` or ``sqlite:////absolute/file.db``."""
        return cls(url=url, **options)


class SQLiteBackend(SyncWrapper, async_class=AsyncSQLiteBackend):
    """Blocking API of :class:`AsyncSQLiteBackend`."""


__all__ = ["AsyncSQLiteBackend", "SQLiteBackend"]
