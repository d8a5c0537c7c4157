"""The self-contained forms of the seeds: ``AsyncTaskQueue``/``TaskQueue`` (seeds/004: an app
that starts its own worker on first use) and the ``from_backend`` pickers of seeds/003
(``TaskQueue.from_backend``, ``ResultStore.from_backend``, ``EventStore.from_backend``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, ParamSpec, TypeVar

from omniq._components import _component_of, _pick
from omniq._sync import SyncWrapper
from omniq.backend import create_backend, normalize_type, type_from_url
from omniq.config import get_settings
from omniq.core import AsyncOmniQ
from omniq.models.task import Task
from omniq.task_function import TaskFunction

P = ParamSpec("P")
R = TypeVar("R")


class AsyncTaskQueue(AsyncOmniQ):
    """The self-contained local form of seeds/004: ``AsyncTaskQueue(storage_type="memory",
    worker_type="async", max_workers=10)`` starts its own worker on first use."""

    def __init__(
        self,
        storage_type: str | None = None,
        *,
        url: str | None = None,
        worker_type: str | None = None,
        max_workers: int | None = None,
        queues: list[str] | None = None,
        project_name: str | None = None,
        auto_start: bool = True,
        **storage_options: Any,
    ) -> None:
        settings = get_settings()
        project = project_name or settings.PROJECT_NAME
        task_queue = None
        configured = settings.TASK_QUEUE_URL
        if (
            url is None
            and storage_type is not None
            and configured
            and type_from_url(configured) == normalize_type(storage_type)
        ):
            # storage_type says which backend; OMNIQ_TASK_QUEUE_URL, when it names the same
            # one, says where (a server, a database file) instead of the backend's defaults
            url = configured
        if storage_type is not None or url is not None:
            options = {"project_name": project, **storage_options}
            if queues is not None:
                options["queues"] = queues
            task_queue = _component_of(create_backend(storage_type, url, **options), "task_queue")
        config = {"max_workers": max_workers} if max_workers else {}
        super().__init__(
            project, task_queue=task_queue, worker_type=worker_type, worker_config=config
        )
        self.auto_start = auto_start

    async def _auto_start(self) -> None:
        if self.auto_start and (self.worker is None or not self.worker.is_running):
            await self.start_worker()

    async def enqueue(self, func: Callable[..., Any] | str | Task, **options: Any) -> str:
        await self._auto_start()
        return await super().enqueue(func, **options)

    async def enqueue_many(self, tasks: Iterable[Task | Mapping[str, Any]]) -> list[str]:
        await self._auto_start()
        return await super().enqueue_many(tasks)

    @classmethod
    def from_backend(  # type: ignore[override]
        cls, backend: Any, *, queues: list[str] | None = None
    ) -> Any:
        """seeds/003: ``TaskQueue.from_backend(backend, queues=[...])`` is the backend's task queue
        component (sync if the backend is sync)."""
        return (
            _pick(backend, "task_queue", queues=queues) if queues else _pick(backend, "task_queue")
        )


class ResultStore:
    """seeds/003: ``ResultStore.from_backend(backend)`` is the backend's result storage."""

    @staticmethod
    def from_backend(backend: Any) -> Any:
        return _pick(backend, "result_store")


class EventStore:
    """seeds/003: ``EventStore.from_backend(backend)`` is the backend's event storage."""

    @staticmethod
    def from_backend(backend: Any) -> Any:
        return _pick(backend, "event_store")


class TaskQueue(SyncWrapper, async_class=AsyncTaskQueue):
    """The blocking API of :class:`AsyncTaskQueue` (seeds/004)."""

    def task(
        self, name: str | None = None, **options: Any
    ) -> Callable[[Callable[P, R]], TaskFunction[P, R]]:
        app: AsyncOmniQ = self.async_
        return app.task(name, sync=True, **options)

    @classmethod
    def from_backend(cls, backend: Any, *, queues: list[str] | None = None) -> Any:
        return AsyncTaskQueue.from_backend(backend, queues=queues)


__all__ = ["AsyncTaskQueue", "EventStore", "ResultStore", "TaskQueue"]
