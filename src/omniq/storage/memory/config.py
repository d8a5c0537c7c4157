"""Options of the memory backend's components."""

from __future__ import annotations

from omniq.models.config import ConfigStruct, TaskQueueConfig


class MemoryTaskQueueConfig(TaskQueueConfig):
    name: str | None = None


class MemoryResultStorageConfig(ConfigStruct):
    project_name: str = "default"
    name: str | None = None


class MemoryEventStorageConfig(ConfigStruct):
    project_name: str = "default"
    name: str | None = None
    max_events: int = 100_000


__all__ = ["MemoryEventStorageConfig", "MemoryResultStorageConfig", "MemoryTaskQueueConfig"]
