"""The one sync-wrapper mechanism (ARCHITECTURE section 5).

The async class is the implementation. A sync class is declared in one line::

    class MemoryQueue(SyncWrapper, async_class=AsyncMemoryQueue): ...

and gets, mechanically, a blocking twin of every coroutine method (under its plain name and with a
``_sync`` suffix), ``__enter__``/``__exit__`` from ``__aenter__``/``__aexit__``, classmethods and
properties that hand back sync objects, and attribute access forwarded to the async instance.

Every coroutine runs on one long-lived event loop per process, in a daemon thread behind an anyio
``BlockingPortal``: connection pools live on that loop, so a sync object can be used from any thread
(including a worker's task threads) without "attached to a different loop" errors.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import functools
import inspect
import os
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

if TYPE_CHECKING:
    from anyio.from_thread import BlockingPortal

T = TypeVar("T")

_SYNC_CLASSES: dict[type, type[SyncWrapper]] = {}


class _PortalThread:
    """A process-wide event loop in a daemon thread, recreated after ``fork``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._portal: BlockingPortal | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    @property
    def thread_ident(self) -> int | None:
        return self._thread.ident if self._thread is not None else None

    def get(self) -> BlockingPortal:
        return self.running()[0]

    def running(self) -> tuple[BlockingPortal, asyncio.AbstractEventLoop]:
        """The portal and its loop, started (again, after a fork or a shutdown) if need be."""
        portal, loop = self._portal, self._loop
        if portal is not None and loop is not None and self._pid == os.getpid():
            return portal, loop
        with self._lock:
            if self._portal is None or self._loop is None or self._pid != os.getpid():
                self._start()
            assert self._portal is not None
            assert self._loop is not None
            return self._portal, self._loop

    def _start(self) -> None:
        # imported here: a process that never uses the sync API (an async worker) never pays
        # for anyio's import, a tenth of the modules it would load at start
        import anyio
        from anyio.from_thread import BlockingPortal

        ready: Future[tuple[BlockingPortal, asyncio.AbstractEventLoop]] = Future()

        async def main() -> None:
            async with BlockingPortal() as portal:
                ready.set_result((portal, asyncio.get_running_loop()))
                await portal.sleep_until_stopped()

        def run() -> None:
            try:
                anyio.run(main)
            except BaseException as exc:  # pragma: no cover - surfaced through `ready`
                if not ready.done():
                    ready.set_exception(exc)

        thread = threading.Thread(target=run, name="omniq-portal", daemon=True)
        thread.start()
        self._portal, self._loop = ready.result()
        self._thread = thread
        self._pid = os.getpid()

    def shutdown(self, timeout: float = 5.0) -> None:
        with self._lock:
            portal, thread = self._portal, self._thread
            self._portal = self._thread = self._loop = None
        if portal is None or thread is None or self._pid != os.getpid():
            return
        from omniq._exit import close_open

        try:
            # what the program left open (a worker whose stop_worker() was forgotten, connections)
            # is closed on this loop while it still runs: stopping the loop under a running worker
            # leaves its threads calling into a closed loop ("Event loop is closed")
            portal.call(close_open)
            portal.call(portal.stop, True)
        except Exception:  # the loop may already be gone at interpreter exit
            return
        thread.join(timeout)


_portal = _PortalThread()
#: at exit the leftovers are closed first (bounded by omniq._exit.CLOSE_DEADLINE); a loop that
#: still does not stop after that is a daemon thread and is left behind rather than waited for
atexit.register(_portal.shutdown, 0.5)


def check_thread() -> None:
    if threading.get_ident() == _portal.thread_ident:
        raise RuntimeError(
            "a sync OmniQ method was called from OmniQ's own event loop (inside an async task or "
            "callback); use the Async* class and `await` there"
        )


class _Call:
    """One call handed to the loop: the caller waits on ``done`` (a plain lock, released by the
    loop once the task has ended), the cheapest handover between two threads."""

    __slots__ = ("args", "done", "error", "func", "task")

    def __init__(self, func: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.done = threading.Lock()
        self.done.acquire()
        self.func, self.args = func, args
        self.task: asyncio.Task[Any] | None = None
        self.error: BaseException | None = None

    def start(self) -> None:
        """On the loop: runs the call as a task (a plain function too: what it builds may need a
        running task)."""
        try:
            self.task = asyncio.get_running_loop().create_task(self._run())
        except BaseException:
            self.done.release()
            raise
        self.task.add_done_callback(self._finished)

    async def _run(self) -> Any:
        try:
            value = self.func(*self.args)
            if inspect.isawaitable(value):
                value = await value
        except (KeyboardInterrupt, SystemExit) as exc:
            # the caller's to handle: raised out of a task it would stop OmniQ's loop instead
            self.error = exc
            return None
        return value

    def _finished(self, _: asyncio.Task[Any]) -> None:
        self.done.release()

    def result(self) -> Any:
        self.done.acquire()
        task = self.task
        if task is None:
            raise RuntimeError("OmniQ's event loop could not start the call")
        if self.error is not None:
            raise self.error
        if task.cancelled():
            raise concurrent.futures.CancelledError()
        return task.result()


def run_sync(func: Callable[..., Any], *args: Any) -> Any:
    """Runs a coroutine function (or a plain function) on the shared loop and returns its result.

    Exceptions propagate with their own type and traceback. One hop each way, in a copy of the
    caller's context variables: the call is handed to the loop with ``call_soon_threadsafe``,
    and the caller waits on a lock the loop releases. (``BlockingPortal.call`` takes two hops
    to the loop for the same, one to spawn a task and one for its result, and waits on a
    condition: a sync enqueue paid about 0.4 ms for it here, against about 0.06 ms now.)
    """
    check_thread()
    call = _Call(func, args)
    _portal.running()[1].call_soon_threadsafe(call.start)
    return call.result()


def blocking_outside_loop(method: Callable[..., Any]) -> Callable[..., Any]:
    """For async classes the seeds also drive from plain sync code (``AsyncWorker(...).start()``):
    called where no event loop runs in this thread, the coroutine runs to completion on OmniQ's
    loop; called inside a running loop, the coroutine is returned to be awaited."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = functools.partial(method, self, *args, **kwargs)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return run_sync(call)
        return call()

    return wrapper


def shutdown_portal(timeout: float = 5.0) -> None:
    """Stops the shared loop (done automatically at exit)."""
    _portal.shutdown(timeout)


def wrap(value: Any) -> Any:
    """Returns the sync twin of an async OmniQ object (cached per object); other values unchanged."""
    kind = type(value)
    if kind is list:
        return [wrap(v) for v in value]
    if kind is tuple:
        return tuple(wrap(v) for v in value)
    sync_cls = _sync_class_for(kind)
    if sync_cls is None:
        return value
    ref = getattr(value, "_omniq_sync_ref", None)
    existing = ref() if ref is not None else None
    if existing is not None:
        return existing
    wrapper = sync_cls.__new__(sync_cls)
    object.__setattr__(wrapper, "_async", value)
    with contextlib.suppress(AttributeError):  # objects with __slots__ are wrapped afresh
        value._omniq_sync_ref = weakref.ref(wrapper)
    return wrapper


def unwrap(value: Any) -> Any:
    """The async object behind a sync wrapper (for arguments crossing into async code)."""
    if isinstance(value, SyncWrapper):
        return object.__getattribute__(value, "_async")
    if type(value) is list:
        return [unwrap(v) for v in value]
    if type(value) is tuple:
        return tuple(unwrap(v) for v in value)
    return value


def _sync_class_for(kind: type) -> type[SyncWrapper] | None:
    if kind in _SYNC_CLASSES:
        return _SYNC_CLASSES[kind]
    for base in kind.__mro__[1:]:
        if base in _SYNC_CLASSES:
            return _SYNC_CLASSES[base]
    return None


def _unwrap_call(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return tuple(unwrap(a) for a in args), {k: unwrap(v) for k, v in kwargs.items()}


def _make_coroutine_method(name: str) -> Callable[..., Any]:
    def method(self: SyncWrapper, *args: Any, **kwargs: Any) -> Any:
        target = getattr(object.__getattribute__(self, "_async"), name)
        a, kw = _unwrap_call(args, kwargs)
        return wrap(run_sync(functools.partial(target, *a, **kw)))

    method.__name__ = name
    return method


def _make_plain_method(name: str) -> Callable[..., Any]:
    def method(self: SyncWrapper, *args: Any, **kwargs: Any) -> Any:
        target = getattr(object.__getattribute__(self, "_async"), name)
        a, kw = _unwrap_call(args, kwargs)
        return wrap(target(*a, **kw))

    method.__name__ = name
    return method


def _make_classmethod(async_class: type, name: str) -> classmethod[Any, Any, Any]:
    def method(cls: type, *args: Any, **kwargs: Any) -> Any:
        target = getattr(async_class, name)
        a, kw = _unwrap_call(args, kwargs)
        # run on the loop thread either way: factories may create loop-bound primitives
        return wrap(run_sync(functools.partial(target, *a, **kw)))

    method.__name__ = name
    return classmethod(method)


def _make_staticmethod(func: Callable[..., Any], name: str) -> staticmethod[Any, Any]:
    def method(*args: Any, **kwargs: Any) -> Any:
        a, kw = _unwrap_call(args, kwargs)
        return wrap(run_sync(functools.partial(func, *a, **kw)))

    method.__name__ = name
    return staticmethod(method)


def _make_property(name: str) -> property:
    def getter(self: SyncWrapper) -> Any:
        return wrap(getattr(object.__getattribute__(self, "_async"), name))

    def setter(self: SyncWrapper, value: Any) -> None:
        setattr(object.__getattribute__(self, "_async"), name, unwrap(value))

    return property(getter, setter)


class SyncWrapper:
    """Base of every sync class; see the module docstring."""

    _async_class: ClassVar[type]
    _async: Any

    def __init_subclass__(cls, async_class: type | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if async_class is None:
            return
        cls._async_class = async_class
        _SYNC_CLASSES[async_class] = cls
        own = set(cls.__dict__)
        seen: set[str] = set()
        for klass in async_class.__mro__:
            if klass is object:
                continue
            for name, attr in vars(klass).items():
                if name in seen:
                    continue
                seen.add(name)
                if name in own:  # a hand-written override on the sync class wins
                    continue
                _install(cls, async_class, name, attr)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        a, kw = _unwrap_call(args, kwargs)
        instance = run_sync(functools.partial(self._async_class, *a, **kw))
        object.__setattr__(self, "_async", instance)
        with contextlib.suppress(AttributeError):
            instance._omniq_sync_ref = weakref.ref(self)

    def __enter__(self) -> Self:
        run_sync(object.__getattribute__(self, "_async").__aenter__)
        return self

    def __exit__(self, *exc: Any) -> Any:
        return run_sync(object.__getattribute__(self, "_async").__aexit__, *exc)

    def __getattr__(self, name: str) -> Any:
        # only reached for names not generated on the class: instance attributes of the async object
        return wrap(getattr(object.__getattribute__(self, "_async"), name))

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(object.__getattribute__(self, "_async"), name, unwrap(value))

    def __repr__(self) -> str:
        return f"<sync {object.__getattribute__(self, '_async')!r}>"

    @property
    def async_(self) -> Any:
        """The async object this wraps (for handing to async code)."""
        return object.__getattribute__(self, "_async")


def _install(cls: type, async_class: type, name: str, attr: Any) -> None:
    if name.startswith("__") or name in ("_async", "_omniq_sync_ref"):
        return
    if isinstance(attr, classmethod):
        factory = _make_classmethod(async_class, name)
        setattr(cls, name, factory)
        if inspect.iscoroutinefunction(attr.__func__) and not name.startswith("_"):
            setattr(cls, f"{name}_sync", factory)
    elif isinstance(attr, staticmethod):
        if inspect.iscoroutinefunction(attr.__func__):
            static = _make_staticmethod(attr.__func__, name)
            setattr(cls, name, static)
            if not name.startswith("_"):
                setattr(cls, f"{name}_sync", static)
        else:
            setattr(cls, name, attr)
    elif isinstance(attr, property):
        setattr(cls, name, _make_property(name))
    elif inspect.iscoroutinefunction(attr):
        method = _make_coroutine_method(name)
        setattr(cls, name, method)
        if not name.startswith("_"):
            setattr(cls, f"{name}_sync", method)
    elif inspect.isfunction(attr) and not name.startswith("_"):
        setattr(cls, name, _make_plain_method(name))


__all__ = ["SyncWrapper", "blocking_outside_loop", "run_sync", "shutdown_portal", "unwrap", "wrap"]
