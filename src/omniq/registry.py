"""Function references: registered task names and ``module:qualname`` import paths.

Producers store a *name*; workers turn it back into a callable here. A function travels by name
whenever it has one (ARCHITECTURE section 4), so a task stays msgpack and readable everywhere;
only lambdas, closures and other callables without a name need dill.

A function defined in the script itself is named ``__main__:qualname``. The worker resolves that
against the module standing for ``__main__`` in its own process: for a worker started inside the
script (``oq.start_worker()``), the script itself; for ``omniq worker --app script:oq``, the module
``script`` (Celery's ``app.main`` idea: the worker is told which module the script is). The
registry is process-wide so that a worker process that imports the application module knows
every ``@oq.task`` name.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

from omniq.exceptions import FunctionNotFound
from omniq.models.task import callable_name

MAIN = "__main__"

#: How a worker gets to see the functions of a script (said wherever one cannot be found).
MAIN_HINT = (
    "start the worker with `omniq worker --app <script>:<app>` (the script's module name and "
    "its OmniQ object, e.g. `--app myscript:oq`, run from the script's folder), or move the "
    "function into a module the worker can import"
)

_OWN_MAIN: Any = object()  # sentinel: resolve __main__ against this process's own __main__


class TaskRegistry:
    def __init__(self) -> None:
        self._by_name: dict[str, Callable[..., Any]] = {}
        self._options: dict[str, dict[str, Any]] = {}
        self._imported: dict[str, Callable[..., Any]] = {}
        self._lock = threading.Lock()
        self._main: ModuleType | None = _OWN_MAIN

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

    # -- the module standing for __main__ ---------------------------------------------------
    def set_main_module(self, module: ModuleType | None) -> None:
        """Which module ``__main__:...`` references resolve against in this process: the module
        of ``omniq worker --app``, or None for a worker whose own ``__main__`` is a command-line
        tool rather than the user's script (such references then fail with a hint)."""
        self._main = module

    def use_own_main(self) -> None:
        """Back to the default: ``__main__:...`` is this process's own ``__main__``."""
        self._main = _OWN_MAIN

    @contextlib.contextmanager
    def main_module(self, module: ModuleType | None) -> Iterator[None]:
        """:meth:`set_main_module` for the time of a ``with`` block (a worker's run)."""
        previous, self._main = self._main, module
        try:
            yield
        finally:
            self._main = previous

    def _main_module(self) -> ModuleType | None:
        if self._main is _OWN_MAIN:
            return sys.modules.get(MAIN)
        return self._main

    # -- names -> functions -----------------------------------------------------------------
    def reference(self, func: Callable[..., Any]) -> str | None:
        """The name ``func`` travels by: its registered task name, or ``module:qualname`` when
        that leads back to it; None when it has no such name (a lambda, a closure, a nested
        function, a bound method, a ``functools.partial``...). A function of the script itself
        is ``__main__:qualname``, looked up in this process's own ``__main__``."""
        registered = getattr(func, "__omniq_name__", None)
        if isinstance(registered, str):
            return registered
        name = callable_name(func)
        module_name, _, qualname = name.partition(":")
        if "<" in qualname:
            return None
        try:
            if module_name == MAIN:
                found = _attribute(sys.modules.get(MAIN), name, qualname)
            else:
                found = self.resolve(name)
        except FunctionNotFound:
            return None
        return name if _unwrap(found) is _unwrap(func) else None

    def resolve(self, ref: str) -> Callable[..., Any]:
        """The callable for a registered name or an import path; raises FunctionNotFound naming
        it and saying what to do."""
        known = self._by_name.get(ref) or self._imported.get(ref)
        if known is not None:
            return known
        module_name, qualname = _parse(ref)
        return self._load(ref, module_name, qualname)

    def _load(self, ref: str, module_name: str, qualname: str) -> Callable[..., Any]:
        """The one place where a reference that is not a registered name becomes code: the only
        step that imports a module or reads the script's namespace. Whatever decides which
        references a worker may run belongs at the top of this method, before the import."""
        if module_name == MAIN:
            # not cached: which module stands for __main__ is decided when the worker starts
            module = self._main_module()
            if module is None:
                raise FunctionNotFound(
                    f"task function {ref!r} was defined in the script that enqueued it (its "
                    f"__main__), and this worker was not told which module that is: {MAIN_HINT}"
                )
            return _unwrap(_attribute(module, ref, qualname))
        try:
            module = importlib.import_module(module_name)
        except (ImportError, ValueError, TypeError) as exc:
            raise FunctionNotFound(
                f"task function {ref!r}: cannot import module {module_name!r} ({exc}); start "
                "the worker where that module is importable (the project's root, or with --app)"
            ) from exc
        func = _unwrap(_attribute(module, ref, qualname))
        self._imported[ref] = func
        return func

    def is_importable_as(self, func: Callable[..., Any], ref: str) -> bool:
        """Whether *another* process resolves ``ref`` to ``func`` by importing it (a
        ``__main__`` reference depends on which module that process takes for its script)."""
        if ref.partition(":")[0] == MAIN:
            return False
        try:
            return _unwrap(self.resolve(ref)) is _unwrap(func)
        except FunctionNotFound:
            return False


def _unwrap(func: Any) -> Callable[..., Any]:
    inner: Callable[..., Any] = getattr(func, "__omniq_func__", func)
    return inner


def _parse(ref: str) -> tuple[str, str]:
    if ":" in ref:
        module_name, _, qualname = ref.partition(":")
    elif "." in ref:
        module_name, _, qualname = ref.rpartition(".")
    else:
        raise FunctionNotFound(
            f"unknown task function {ref!r}: not a task name registered in this worker, and not "
            "an import path ('module:function'); if it is an @oq.task name, start the worker "
            "with `omniq worker --app <module>:<app>` so that its module is imported"
        )
    if not module_name or module_name.startswith(".") or not qualname:
        raise FunctionNotFound(f"task function {ref!r} is not a 'module:function' import path")
    if "<" in qualname:
        raise FunctionNotFound(
            f"task function {ref!r} is a lambda or a nested function, which has no importable "
            "name: define it at module level"
        )
    return module_name, qualname


def _attribute(module: ModuleType | None, ref: str, qualname: str) -> Any:
    obj: Any = module
    if obj is None:
        raise FunctionNotFound(f"task function {ref!r}: this process has no __main__ module")
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            where = getattr(module, "__name__", "?")
            hint = f" ({MAIN_HINT})" if ref.startswith(f"{MAIN}:") else ""
            raise FunctionNotFound(
                f"task function {ref!r}: module {where!r} has no attribute {qualname!r}{hint}"
            ) from None
    if not callable(obj):
        raise FunctionNotFound(f"task function {ref!r} is a {type(obj).__name__}, not a callable")
    return obj


registry = TaskRegistry()

__all__ = ["MAIN", "MAIN_HINT", "TaskRegistry", "registry"]
