"""``@oq.task``: a function registered with an app, still callable as itself, plus ``enqueue``
and the workflow signatures ``s``/``si``."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

from omniq.models.task import callable_name
from omniq.workflows.canvas import Signature


class _App(Protocol):
    """What a task function needs of its app (``AsyncOmniQ``)."""

    async def enqueue(self, func: Any, **options: Any) -> str: ...

    def _enqueue_blocking(self, func: Any, **options: Any) -> str: ...


P = ParamSpec("P")
R = TypeVar("R")


class TaskFunction(Generic[P, R]):
    """A function registered with ``@oq.task``: still callable as itself, plus ``enqueue``."""

    def __init__(
        self, func: Callable[P, R], name: str, options: dict[str, Any], app: _App, sync: bool
    ) -> None:
        functools.update_wrapper(self, func)
        self.__omniq_func__ = func
        self.__omniq_name__ = name
        self.name = name
        self.options = options
        self._app = app
        self._sync = sync

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.__omniq_func__(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<task {self.name!r} -> {callable_name(self.__omniq_func__)}>"

    def _app_now(self) -> _App:
        """The app that enqueues it: the one it was declared on (a Django project's task asks
        the project's settings at each call instead)."""
        return self._app

    async def enqueue_async(self, *args: Any, **kwargs: Any) -> str:
        """Enqueues ``func(*args, **kwargs)`` with the task's registered options."""
        return await self._app_now().enqueue(self, args=args, kwargs=kwargs)

    def enqueue_sync(self, *args: Any, **kwargs: Any) -> str:
        return self._app_now()._enqueue_blocking(self, args=args, kwargs=kwargs)

    def enqueue(self, *args: Any, **kwargs: Any) -> Any:
        """Sync on an ``OmniQ`` app (returns the id), a coroutine on an ``AsyncOmniQ`` app."""
        if self._sync:
            return self.enqueue_sync(*args, **kwargs)
        return self.enqueue_async(*args, **kwargs)

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """This task called with ``args``/``kwargs``, to put in a workflow (``chain``, ``group``,
        ``chord``); in a chain the previous result comes first."""
        return Signature(self, args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """Like :meth:`s`, but immutable: a chain passes it no previous result."""
        return Signature(self, args, kwargs, immutable=True)

    async def enqueue_with_async(
        self, *, args: Iterable[Any] = (), kwargs: Mapping[str, Any] | None = None, **options: Any
    ) -> str:
        return await self._app_now().enqueue(
            self, args=tuple(args), kwargs=dict(kwargs or {}), **options
        )

    def enqueue_with(
        self, *, args: Iterable[Any] = (), kwargs: Mapping[str, Any] | None = None, **options: Any
    ) -> Any:
        """Enqueue with per-call options (``queue_name``, ``run_in``, ``priority``, ...)."""
        if self._sync:
            return self._app_now()._enqueue_blocking(
                self, args=tuple(args), kwargs=dict(kwargs or {}), **options
            )
        return self.enqueue_with_async(args=args, kwargs=kwargs, **options)


__all__ = ["TaskFunction"]
