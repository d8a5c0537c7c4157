"""Function references: registered task names and ``module:qualname`` import paths.

Producers store a *name*; workers turn it back into a callable here. The registry is process-wide so
that a worker process that imports the application module (``omniq worker --app pkg.tasks:oq``)
knows every ``@oq.task`` name.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any

from omniq.exceptions import FunctionNotFound
from omniq.models.task import callable_name


class TaskRegistry:
    def __init__(self) -> None:
        self._by_name: dict[str, Callable[..., Any]] = {}
        self._options: dict[str, dict[str, Any]] = {}
        self._imported: dict[str, Callable[..., Any]] = {}
        self._lock = threading.Lock()

    def register(
        self, name: str, func: Callable[..., Any], options: dict[str, Any] | None = None
    ) -> None:
        with self._lock:
            existing = self._by_name.get(name)
            if (
                existing is not None
                and existing is not func
                and callable_name(existing) != callable_name(func)
            ):
                raise ValueError(
                    f"task name {name!r} is already registered for {callable_name(existing)}"
                )
            self._by_name[name] = func
            self._options[name] = dict(options or {})

    def options(self, name: str) -> dict[str, Any]:
        return self._options.get(name, {})

    def get(self, name: str) -> Callable[..., Any] | None:
        return self._by_name.get(name)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def resolve(self, ref: str) -> Callable[..., Any]:
        """The callable for a registered name or an import path; raises FunctionNotFound naming it."""
        known = self._by_name.get(ref) or self._imported.get(ref)
        if known is not None:
            return known
        func = _unwrap(_import(ref))
        self._imported[ref] = func
        return func

    def is_importable_as(self, func: Callable[..., Any], ref: str) -> bool:
        try:
            return _unwrap(self.resolve(ref)) is _unwrap(func)
        except FunctionNotFound:
            return False


def _unwrap(func: Any) -> Callable[..., Any]:
    inner: Callable[..., Any] = getattr(func, "__omniq_func__", func)
    return inner


def _import(ref: str) -> Callable[..., Any]:
    if ":" in ref:
        module_name, _, qualname = ref.partition(":")
    elif "." in ref:
        module_name, _, qualname = ref.rpartition(".")
    else:
        raise FunctionNotFound(
            f"unknown task function {ref!r}: not a registered task name, and not an import path "
            "('module:function')"
        )
    if not module_name or module_name.startswith(".") or not qualname:
        raise FunctionNotFound(f"task function {ref!r} is not a 'module:function' import path")
    if module_name == "__main__" or "<" in qualname:
        raise FunctionNotFound(f"task function {ref!r} cannot be imported by another process")
    try:
        obj: Any = importlib.import_module(module_name)
    except (ImportError, ValueError, TypeError) as exc:
        raise FunctionNotFound(
            f"task function {ref!r}: cannot import module {module_name!r} ({exc})"
        ) from exc
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise FunctionNotFound(
                f"task function {ref!r}: module {module_name!r} has no attribute {qualname!r}"
            ) from None
    if not callable(obj):
        raise FunctionNotFound(f"task function {ref!r} is a {type(obj).__name__}, not a callable")
    func: Callable[..., Any] = obj
    return func


registry = TaskRegistry()

__all__ = ["TaskRegistry", "registry"]
