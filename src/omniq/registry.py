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

**What a worker runs** (ARCHITECTURE section 4). Anyone who can write to the broker can write any
name into a task, so a worker resolves names through :meth:`TaskRegistry.resolve` with its
:class:`FunctionPolicy`, which allows, *before anything is imported*: registered ``@oq.task``
names; functions defined in the modules the worker was given (``--app``, ``--include``,
``task_modules``, ``OMNIQ_TASK_MODULES``) or in the script that runs it; and functions its own
process enqueued to the store the worker serves (an in-process worker: :attr:`FunctionPolicy.enqueued`,
never what the process enqueued to another store).
Everything else, stdlib and builtins included, is refused with
:class:`~omniq.exceptions.FunctionNotAllowed`, unless the policy says ``allow_any``.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from collections.abc import Set as AbstractSet
from types import ModuleType
from typing import Any

from omniq.exceptions import FunctionNotAllowed, FunctionNotFound
from omniq.models.task import callable_name

MAIN = "__main__"

#: How a worker gets to see the functions of a script (said wherever one cannot be found).
MAIN_HINT = (
    "start the worker with `omniq worker --app <script>:<app>` (the script's module name and "
    "its OmniQ object, e.g. `--app myscript:oq`, run from the script's folder), or move the "
    "function into a module the worker can import"
)

_OWN_MAIN: Any = object()  # sentinel: resolve __main__ against this process's own __main__

#: How to allow a function a worker refused (said in every refusal).
ALLOW_HINT = (
    "register it with @oq.task in a module the worker imports (`omniq worker --app "
    "<module>:<app>`), or name its module with `omniq worker --include <module>` / "
    "task_modules=[...] / OMNIQ_TASK_MODULES, or pass allow_any_function=True (any importable "
    "function may then be run by whoever can write to the broker)"
)


class FunctionPolicy:
    """Which task functions one worker may run, besides registered names: the references this
    process enqueued to the worker's store (``enqueued``), the functions *defined in* ``modules`` (a name
    re-exported there, such as ``os``'s ``system`` imported into a task module, does not count),
    or anything when ``allow_any``."""

    __slots__ = ("allow_any", "allowed", "enqueued", "modules")

    def __init__(
        self,
        modules: Iterable[str] = (),
        *,
        allow_any: bool = False,
        enqueued: AbstractSet[str] = frozenset(),
    ) -> None:
        self.modules = frozenset(modules)
        self.allow_any = allow_any
        #: the references this process enqueued to the store the worker serves, read live
        #: (``BaseTaskQueue.enqueued_functions``): what it enqueued to another store (other
        #: writers) does not widen what this worker runs
        self.enqueued = enqueued
        #: references already checked against this policy (never ``__main__`` ones, which
        #: depend on the module standing for the script at the time): the check runs once per
        #: function, not once per task
        self.allowed: dict[str, Callable[..., Any]] = {}

    def __repr__(self) -> str:
        return f"FunctionPolicy(modules={sorted(self.modules)}, allow_any={self.allow_any})"


class TaskRegistry:
    def __init__(self) -> None:
        self._by_name: dict[str, Callable[..., Any]] = {}
        self._options: dict[str, dict[str, Any]] = {}
        self._imported: dict[str, Callable[..., Any]] = {}
        self._lock = threading.Lock()
        self._main: ModuleType | None = _OWN_MAIN
        #: bumped by every registration: what was resolved from registered names and options
        #: before (``omniq.queue.builder``'s per-function defaults) is stale once it moves
        self.generation = 0

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
            self.generation += 1

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

    # -- what a worker may run ----------------------------------------------------------------
    def resolve(self, ref: str, policy: FunctionPolicy | None = None) -> Callable[..., Any]:
        """The callable for a registered name or an import path; raises FunctionNotFound naming
        it and saying what to do.

        ``policy`` is given where the name comes from storage (a worker): a name the policy does
        not allow raises :class:`FunctionNotAllowed` before anything is imported. Without one,
        the caller vouches for the name (a producer checking its own reference)."""
        known = self._by_name.get(ref)
        if known is not None:
            return known
        if policy is not None and not policy.allow_any and ref not in policy.enqueued:
            known = policy.allowed.get(ref)
            return known if known is not None else self._allowed_load(ref, policy)
        known = self._imported.get(ref)
        if known is not None:
            return known
        module_name, qualname = _parse(ref)
        return self._load(ref, module_name, qualname)

    def _allowed_load(self, ref: str, policy: FunctionPolicy) -> Callable[..., Any]:
        """The check of a name that is neither registered nor enqueued here: its module must be
        one the worker was given (or the script's own), and the function must be defined there."""
        module_name, qualname = _parse(ref)
        main = self._main_module() if module_name == MAIN else None
        if module_name == MAIN:
            homes = {MAIN} | ({main.__name__} if main is not None else set())
            allowed = main is not None
        else:
            homes = {module_name}
            allowed = module_name in policy.modules
        if not allowed:
            raise FunctionNotAllowed(
                f"task function {ref!r} refused: this worker runs only functions it was told "
                f"about (not registered with @oq.task, not in its task modules "
                f"{sorted(policy.modules) or '(none)'}, not enqueued to this store by this process); "
                f"{ALLOW_HINT}"
            )
        func = self._imported.get(ref) or self._load(ref, module_name, qualname)
        defined_in = getattr(func, "__module__", None)
        if defined_in not in homes or getattr(func, "__qualname__", None) != qualname:
            raise FunctionNotAllowed(
                f"task function {ref!r} refused: it is defined in {defined_in!r} as "
                f"{getattr(func, '__qualname__', '?')!r}, not in the task module {module_name!r}; "
                "only functions a task module defines itself are allowed (a name it imports is "
                f"not); {ALLOW_HINT}"
            )
        if module_name != MAIN:
            policy.allowed[ref] = func
        return func

    def _load(self, ref: str, module_name: str, qualname: str) -> Callable[..., Any]:
        """The one place where a reference that is not a registered name becomes code: the only
        step that imports a module or reads the script's namespace. A worker's names pass
        :meth:`_allowed_load` first, so nothing it was not told about is ever imported."""
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


#: (backend, server, project) -> the function references this process enqueued to that store
_ENQUEUED: dict[tuple[str, str, str], set[str]] = {}
_ENQUEUED_LOCK = threading.Lock()


def enqueued_record(backend: str, server: str, project: str) -> set[str]:
    """The one record of what this process enqueued to a store, shared by every queue object
    on it (``BaseTaskQueue.enqueued_functions``): an in-process worker of that store runs those
    functions without being told. Per store, not per process: a function enqueued to one store
    does not become runnable when a broker-writer puts its name into another."""
    with _ENQUEUED_LOCK:
        return _ENQUEUED.setdefault((backend, server, project), set())


def module_names(value: str | Iterable[str] | None) -> list[str]:
    """``"a.tasks, b.jobs"`` or ``["a.tasks", "b.jobs"]`` -> the module names, blanks dropped."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    names: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"task_modules takes module names, got {item!r}")
        if item.strip():
            names.append(item.strip())
    return names


def worker_policy(
    task_modules: str | Iterable[str] | None = None,
    allow_any_function: bool | None = None,
    enqueued: AbstractSet[str] = frozenset(),
) -> FunctionPolicy:
    """The policy of a worker: ``task_modules`` on top of the TASK_MODULES setting (each imported
    now, so that their ``@oq.task`` functions register and a typo fails at start, naming the
    module), ``allow_any_function`` or else the ALLOW_ANY_FUNCTION setting, and the references
    this process enqueued to the worker's store (``enqueued``, read live)."""
    from omniq.config import get_settings
    from omniq.exceptions import ConfigError

    settings = get_settings()
    modules = dict.fromkeys(module_names(settings.TASK_MODULES) + module_names(task_modules))
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:
            raise ConfigError(
                f"task module {name!r} cannot be imported: {type(exc).__name__}: {exc}"
            ) from exc
    allow = settings.ALLOW_ANY_FUNCTION if allow_any_function is None else allow_any_function
    return FunctionPolicy(modules, allow_any=bool(allow), enqueued=enqueued)


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

__all__ = [
    "ALLOW_HINT",
    "MAIN",
    "MAIN_HINT",
    "FunctionPolicy",
    "TaskRegistry",
    "enqueued_record",
    "module_names",
    "registry",
    "worker_policy",
]
