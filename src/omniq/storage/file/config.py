"""Options of the file backend's components (seed 003's ``FileTaskQueueConfig`` among them)."""

from __future__ import annotations

from typing import Any

import msgspec

from omniq.models.config import ConfigStruct, TaskQueueConfig


class FileConfig(ConfigStruct):
    """Where the file backend keeps its objects: ``base_dir`` is a folder or a URL (``file://``,
    ``memory://``, ``s3://``, ``gs://``, ``az://``/``abfs://``); ``storage_options`` takes
    fsspec's names (``key``, ``secret``, ``endpoint_url``, ``account_name``, ``account_key``,
    ``token``...) or obstore's. Without ``base_dir``: ``OMNIQ_OBSTORE_URI``/``OMNIQ_FSSPEC_URI``,
    else ``./.omniq/files``."""

    project_name: str = "default"
    base_dir: str | None = None
    storage_options: dict[str, Any] = msgspec.field(default_factory=dict)
    queues: list[str] | None = None
    lease_timeout: float | None = None
    secret_key: str | None = None
    allow_dill: bool | None = None


class FileTaskQueueConfig(TaskQueueConfig):
    base_dir: str | None = None
    storage_options: dict[str, Any] = msgspec.field(default_factory=dict)
    keep_finished: int = 1000
    poll_interval: float = 0.05
    max_poll_interval: float = 1.0


class FileResultStorageConfig(ConfigStruct):
    project_name: str = "default"
    base_dir: str | None = None
    storage_options: dict[str, Any] = msgspec.field(default_factory=dict)
    secret_key: str | None = None
    allow_dill: bool | None = None


class FileEventStorageConfig(ConfigStruct):
    project_name: str = "default"
    base_dir: str | None = None
    storage_options: dict[str, Any] = msgspec.field(default_factory=dict)


__all__ = [
    "FileConfig",
    "FileEventStorageConfig",
    "FileResultStorageConfig",
    "FileTaskQueueConfig",
]
