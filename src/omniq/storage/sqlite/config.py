"""Options of the SQLite backend's components."""

from __future__ import annotations

from omniq.models.config import ConfigStruct, TaskQueueConfig


class SQLiteConfig(ConfigStruct):
    """Where the SQLite backend keeps its file: ``path`` (a file path or ``sqlite:///`` URL), or
    else ``<base_dir>/<project_name>.db`` (``base_dir`` defaults to settings ``BASE_DIR``).
    ``busy_timeout`` (seconds) is how long a write waits for another process's transaction."""

    project_name: str = "default"
    base_dir: str | None = None
    path: str | None = None
    busy_timeout: float | None = None
    queues: list[str] | None = None
    lease_timeout: float | None = None
    secret_key: str | None = None
    allow_dill: bool | None = None


class SQLiteTaskQueueConfig(TaskQueueConfig):
    base_dir: str | None = None
    path: str | None = None
    busy_timeout: float | None = None


class SQLiteResultStorageConfig(ConfigStruct):
    project_name: str = "default"
    base_dir: str | None = None
    path: str | None = None
    busy_timeout: float | None = None
    secret_key: str | None = None
    allow_dill: bool | None = None


class SQLiteEventStorageConfig(ConfigStruct):
    project_name: str = "default"
    base_dir: str | None = None
    path: str | None = None
    busy_timeout: float | None = None


__all__ = [
    "SQLiteConfig",
    "SQLiteEventStorageConfig",
    "SQLiteResultStorageConfig",
    "SQLiteTaskQueueConfig",
]
