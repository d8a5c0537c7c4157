"""Backends: convenience bundles that build a task queue, a result storage and an event storage
from one connection config. Everything else talks to the three interfaces, never to a backend."""

from __future__ import annotations

from typing import Any, ClassVar, Self

from omniq._lifecycle import AsyncConnectable
from omniq.exceptions import BackendUnavailable
from omniq.storage.base import BaseEventStorage, BaseResultStorage, BaseTaskQueue


class AsyncBackend(AsyncConnectable):
    """Subclasses name their three component classes and the options they share."""

    name: ClassVar[str]
    task_queue_class: ClassVar[type[BaseTaskQueue]]
    result_storage_class: ClassVar[type[BaseResultStorage]]
    event_storage_class: ClassVar[type[BaseEventStorage] | None] = None

    def __init__(self, config: Any = None, /, **options: Any) -> None:
        if config is not None:
            data = config.to_dict() if hasattr(config, "to_dict") else dict(config)
            options = {**data, **options}
        self.options = options
        self._queue: BaseTaskQueue | None = None
        self._results: BaseResultStorage | None = None
        self._events: BaseEventStorage | None = None

    @classmethod
    def from_url(cls, url: str, /, **options: Any) -> Self:
        """Builds the bundle from a URL; backends parse their own URL forms."""
        return cls(url=url, **options)

    def __repr__(self) -> str:
        from omniq._redact import redact_value

        shown = ", ".join(f"{k}={redact_value(k, v)!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({shown})"

    # options each component accepts; a backend narrows them where its components differ
    def queue_options(self) -> dict[str, Any]:
        return dict(self.options)

    def result_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.options.items() if k not in ("queues", "lease_timeout")}

    def event_options(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in self.options.items()
            if k not in ("queues", "lease_timeout", "secret_key", "allow_dill")
        }

    def create_task_queue(self, **overrides: Any) -> BaseTaskQueue:
        """A task queue on this backend, wired to the backend's result storage (see
        ``BaseTaskQueue``'s wiring: outcomes the queue decides reach ``get_result`` waiters)."""
        options = {**self.queue_options(), **overrides}
        options.setdefault("result_storage", self.result_storage)
        return self.task_queue_class(**options)

    def create_result_storage(self, **overrides: Any) -> BaseResultStorage:
        return self.result_storage_class(**{**self.result_options(), **overrides})

    def create_event_storage(self, **overrides: Any) -> BaseEventStorage:
        if self.event_storage_class is None:
            raise BackendUnavailable(f"the {self.name} backend has no event storage")
        return self.event_storage_class(**{**self.event_options(), **overrides})

    @property
    def queue(self) -> BaseTaskQueue:
        if self._queue is None:
            self._queue = self.create_task_queue()
        return self._queue

    task_queue = queue

    @property
    def result_storage(self) -> BaseResultStorage:
        if self._results is None:
            self._results = self.create_result_storage()
        return self._results

    result_store = result_storage

    @property
    def event_storage(self) -> BaseEventStorage:
        if self._events is None:
            self._events = self.create_event_storage()
        return self._events

    event_store = event_storage

    def _components(self) -> list[Any]:
        return [c for c in (self._queue, self._results, self._events) if c is not None]

    async def connect(self) -> None:
        for component in (self.queue, self.result_storage):
            await component.connect()

    async def close(self) -> None:
        for component in self._components():
            await component.close()

    async def health_check(self) -> dict[str, Any]:
        checks = {
            "task_queue": await self.queue.health_check(),
            "result_storage": await self.result_storage.health_check(),
        }
        healthy = all(c["status"] == "healthy" for c in checks.values())
        return {
            "status": "healthy" if healthy else "unhealthy",
            "connected": all(c["connected"] for c in checks.values()),
            "backend": self.name,
            **checks,
        }

    async def cleanup(self) -> dict[str, int]:
        swept = await self.queue.cleanup()
        return {**swept, "expired_results": await self.result_storage.cleanup()}


__all__ = ["AsyncBackend"]
