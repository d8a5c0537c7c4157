"""The PostgreSQL backend bundle: task queue, results and events in one database and schema.

    PostgresBackend(project_name="app", host="localhost", port=5432, username="postgres",
                    password="secret")
    create_backend(url="postgresql://postgres@localhost:5432/app?schema=omniq")

Built from one bundle, the queue and the result storage share the database, so a worker's
completions store results and acknowledgements in one transaction.
"""

from __future__ import annotations

from typing import Any

from omniq._sync import SyncWrapper
from omniq.backend.base import AsyncBackend
from omniq.storage.postgres.events import AsyncPostgresEventStorage
from omniq.storage.postgres.queue import AsyncPostgresQueue
from omniq.storage.postgres.results import AsyncPostgresResultStorage


class AsyncPostgresBackend(AsyncBackend):
    name = "postgres"
    task_queue_class = AsyncPostgresQueue
    result_storage_class = AsyncPostgresResultStorage
    event_storage_class = AsyncPostgresEventStorage

    @classmethod
    def from_url(cls, url: str, /, **options: Any) -> AsyncPostgresBackend:
        """``postgresql://user:password@host:port/database?schema=name`` (or ``postgres://``)."""
        return cls(dsn=url, **options)


class PostgresBackend(SyncWrapper, async_class=AsyncPostgresBackend):
    """Blocking API of :class:`AsyncPostgresBackend`."""


__all__ = ["AsyncPostgresBackend", "PostgresBackend"]
