"""The file backend bundle: tasks, results and events as objects in one folder or bucket.

``FileBackend(project_name="my_project", base_dir="some/path")`` or a URL:
``create_backend(url="s3://bucket/prefix", storage_options={...})``.
"""

from __future__ import annotations

from typing import Any

from omniq._sync import SyncWrapper
from omniq.backend.base import AsyncBackend
from omniq.storage.file.queue import AsyncFileQueue
from omniq.storage.file.stores import AsyncFileEventStorage, AsyncFileResultStorage


class AsyncFileBackend(AsyncBackend):
    name = "file"
    task_queue_class = AsyncFileQueue
    result_storage_class = AsyncFileResultStorage
    event_storage_class = AsyncFileEventStorage

    @classmethod
    def from_url(cls, url: str, /, **options: Any) -> AsyncFileBackend:
        """``file:///folder``, ``s3://bucket/prefix``, ``gs://...``, ``az://...``."""
        return cls(base_dir=url, **options)

    def result_options(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in super().result_options().items()
            if k not in ("keep_finished", "poll_interval", "max_poll_interval")
        }

    def event_options(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in super().event_options().items()
            if k not in ("keep_finished", "poll_interval", "max_poll_interval")
        }


class FileBackend(SyncWrapper, async_class=AsyncFileBackend):
    """Blocking API of :class:`AsyncFileBackend`."""


__all__ = ["AsyncFileBackend", "FileBackend"]
