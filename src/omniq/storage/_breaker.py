"""The circuit breaker: one per storage component (one per backend connection), in front of
every public storage call of the worker, the scheduler and the façade.

Why: when a server goes away, every loop of every worker used to keep calling it, each failure
logged and retried on its own backoff (up to 5 s), so the log filled with one line per loop per
second and work resumed up to 5 s after the server returned. With the breaker, ``threshold``
consecutive *connection-level* failures (the component's :meth:`~Component._is_outage` says which:
refused, reset, timed out, server shutting down; never an application answer such as a missing
task) open it: one WARNING line, and from then on calls fail at once with :class:`CircuitOpen`
(a :class:`~omniq.exceptions.BackendUnavailable` naming the server, its password masked) instead
of waiting on a dead socket. After ``cooldown`` seconds one call is let through as the probe
(half-open); the first call that reaches the server closes the breaker again (one INFO line),
and whoever waits in :meth:`CircuitBreaker.wait_ready` wakes at once.

Cost on the hot path: the wrapper that :func:`guard_methods` puts around each public coroutine
method reads one attribute (``healthy``) before and after the call; everything else runs only
while the server is in trouble. Result waits (``wait``) are not gated: they already wait through
an outage within their own timeout (:mod:`omniq.storage._outages`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import time
from collections.abc import Callable, Coroutine
from enum import StrEnum
from typing import Any, Final, TypeVar

import msgspec

from omniq._redact import redact_text
from omniq.exceptions import CircuitOpen, ConfigError, SerializationError, TaskNotFound

log = logging.getLogger("omniq.storage")

T = TypeVar("T")

#: Public coroutine methods of a component that the breaker does not gate: lifecycle and health
#: (they report trouble themselves), and result waits (they wait through outages on their own).
UNGATED: Final = frozenset({"connect", "close", "health_check", "wait"})


#: Errors that are the server's answer (it was reached): they close a half-open breaker.
ANSWERS: Final = (TaskNotFound, SerializationError)


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerConfig(msgspec.Struct, kw_only=True, frozen=True):
    """``threshold`` consecutive connection failures open the breaker (0: never, the breaker is
    off); ``cooldown`` seconds later a probe is let through. Defaults: OMNIQ_BREAKER_THRESHOLD
    and OMNIQ_BREAKER_COOLDOWN."""

    threshold: int = 5
    cooldown: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.threshold, bool) or self.threshold < 0:
            raise ConfigError(f"breaker threshold must be an integer >= 0, got {self.threshold!r}")
        if not 0 < self.cooldown < float("inf"):
            raise ConfigError(f"breaker cooldown must be positive seconds, got {self.cooldown!r}")

    @classmethod
    def from_settings(cls) -> BreakerConfig:
        from omniq.config import get_settings

        settings = get_settings()
        return cls(threshold=settings.BREAKER_THRESHOLD, cooldown=settings.BREAKER_COOLDOWN)


class CircuitBreaker:
    """The state machine; see the module docstring. Used from one event loop."""

    __slots__ = (
        "_closed",
        "_closed_loop",
        "_probe",
        "_server",
        "cooldown",
        "failures",
        "healthy",
        "last_error",
        "opened_at",
        "retry_at",
        "state",
        "threshold",
        "trips",
    )

    def __init__(self, server: Callable[[], str], config: BreakerConfig | None = None) -> None:
        config = config or BreakerConfig.from_settings()
        self._server = server
        self.threshold = config.threshold
        self.cooldown = config.cooldown
        self.state = BreakerState.CLOSED
        #: True while CLOSED with no failure counted: the one flag the hot path reads
        self.healthy = True
        self.failures = 0
        #: wall-clock time (epoch seconds) the breaker last opened, for display
        self.opened_at: float | None = None
        #: monotonic time from which the next probe may go
        self.retry_at = 0.0
        self.last_error: str | None = None
        #: how many times it opened since the component was made
        self.trips = 0
        self._probe: asyncio.Task[Any] | None = None
        self._closed: asyncio.Event | None = None
        self._closed_loop: asyncio.AbstractEventLoop | None = None

    @property
    def server(self) -> str:
        """The server this breaker guards, without credentials."""
        return self._server()

    # -- the gate --------------------------------------------------------------------------
    def admit(self) -> None:
        """Lets a call through or raises :class:`CircuitOpen`. Called only when not ``healthy``
        (a CLOSED breaker with failures counted admits everything)."""
        if self.state is BreakerState.CLOSED:
            return
        task = asyncio.current_task()
        if self.state is BreakerState.HALF_OPEN and task is not None and task is self._probe:
            return  # a call nested inside the probe (enqueue -> enqueue_many)
        now = time.monotonic()
        if now < self.retry_at:
            raise CircuitOpen(
                f"{self.server} is unavailable: {self.failures} consecutive connection failures "
                f"(last: {self.last_error}); calls fail fast, the next try in "
                f"{self.retry_at - now:.2f}s"
            )
        # half-open: this call is the probe; another one may go after a further cooldown (a
        # probe that hangs on a dead socket must not keep the breaker shut for ever)
        self.state = BreakerState.HALF_OPEN
        self.retry_at = now + self.cooldown
        self._probe = task

    def failed(self, exc: BaseException) -> None:
        """Counts one connection-level failure (each exception once: nested calls see it twice)."""
        if isinstance(exc, CircuitOpen) or self.threshold == 0:
            return
        if getattr(exc, "_omniq_counted", None) is not None:
            # counted already: by this breaker in a nested call, or by the component whose
            # call raised it (a result store's failure inside the queue's complete_many is
            # the result store's, not the queue's)
            return
        # a mark on the exception, so nested calls that see it again do not count it again
        with contextlib.suppress(AttributeError):
            exc._omniq_counted = self  # type: ignore[attr-defined]
        self.failures += 1
        self.healthy = False
        self.last_error = f"{type(exc).__name__}: {redact_text(str(exc))}"[:300]
        if self.state is BreakerState.CLOSED:
            if self.failures >= self.threshold:
                self._open()
                log.warning(
                    "circuit breaker OPEN for %s after %d consecutive connection failures "
                    "(last: %s): calls fail fast; probing every %gs",
                    self.server,
                    self.failures,
                    self.last_error,
                    self.cooldown,
                )
        else:  # the probe (or a call from before) failed: wait another cooldown
            self._open()

    def _open(self) -> None:
        if self.state is BreakerState.CLOSED:
            self.trips += 1
            self.opened_at = time.time()
        self.state = BreakerState.OPEN
        self.retry_at = time.monotonic() + self.cooldown
        self._probe = None
        if self._closed is not None:
            self._closed.clear()

    def succeeded(self) -> None:
        """A call reached the server: the breaker closes (if it was open) and the count resets."""
        if self.state is not BreakerState.CLOSED:
            away = time.time() - (self.opened_at or time.time())
            log.info(
                "circuit breaker CLOSED for %s: reachable again (open for %.1fs)",
                self.server,
                away,
            )
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.healthy = True
        self._probe = None
        if self._closed is not None:
            self._closed.set()

    # -- for loops that must not spin while the server is away -----------------------------
    @property
    def is_open(self) -> bool:
        """OPEN or HALF_OPEN: the server is considered away."""
        return self.state is not BreakerState.CLOSED

    def retry_in(self) -> float:
        """Seconds until a probe may go (0 when closed or due)."""
        if self.state is BreakerState.CLOSED:
            return 0.0
        return max(0.0, self.retry_at - time.monotonic())

    async def wait_ready(self, limit: float | None = None) -> None:
        """Returns when the breaker closes or a probe may go (at most ``limit`` seconds): what a
        loop awaits instead of a backoff, so that it resumes as soon as the server is back."""
        if self.state is BreakerState.CLOSED:
            return
        pause = self.retry_in()
        if limit is not None:
            pause = min(pause, limit)
        loop = asyncio.get_running_loop()
        if self._closed is None or self._closed_loop is not loop:
            self._closed, self._closed_loop = asyncio.Event(), loop  # one per loop (sync API)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(pause, 0.01)):
                await self._closed.wait()

    def snapshot(self) -> dict[str, Any]:
        """What ``omniq info``, the dashboard and ``breaker_state()`` show."""
        return {
            "server": self.server,
            "state": self.state.value,
            "failures": self.failures,
            "opened_at": self.opened_at if self.state is not BreakerState.CLOSED else None,
            "last_error": self.last_error,
            "trips": self.trips,
            "threshold": self.threshold,
            "cooldown": self.cooldown,
        }


def away(*components: Any) -> CircuitBreaker | None:
    """The open breaker of the first of ``components`` whose server is away, or None: a loop
    that just failed asks this to know whether the breaker has said it all (stay quiet and
    :meth:`~CircuitBreaker.wait_ready`) or the failure is news (log it)."""
    for component in components:
        breaker = getattr(component, "breaker", None)
        if breaker is not None and breaker.is_open:
            return breaker  # type: ignore[no-any-return]
    return None


def reported(*components: Any) -> bool:
    """Whether an outage of one of ``components`` has been reported already: its breaker is
    open (and said so), or an earlier failure in the same row was logged by whoever met it. A
    loop logs a failure only when this is False, so an outage costs the log a line or two, not
    one per retry."""
    for component in components:
        breaker = getattr(component, "breaker", None)
        if breaker is not None and (breaker.is_open or breaker.failures > 1):
            return True
    return False


async def connect_event_store(store: Any) -> None:
    """Connects an event store, but one that cannot be reached does not stop the app or worker
    that starts it: events are dropped (counted by the EventLogger) until it is back, and it
    connects at the first write that finds it. Events never decide a task's fate."""
    try:
        await store.connect()
    except Exception as exc:
        if not store._is_outage(exc):
            raise
        store.breaker.failed(exc)
        log.warning(
            "event storage %s is unreachable (%s: %s): events are dropped until it is back; "
            "tasks are not affected",
            store.server_label(),
            type(exc).__name__,
            redact_text(str(exc)),
        )


def _guarded(
    method: Callable[..., Coroutine[Any, Any, T]],
) -> Callable[..., Coroutine[Any, Any, T]]:
    @functools.wraps(method)
    async def guarded(self: Any, *args: Any, **kwargs: Any) -> T:
        breaker: CircuitBreaker = self.breaker
        if not breaker.healthy:
            breaker.admit()
        try:
            result = await method(self, *args, **kwargs)
        except Exception as exc:
            if self._is_outage(exc):
                breaker.failed(exc)
            elif not breaker.healthy and isinstance(exc, ANSWERS):
                breaker.succeeded()  # the server answered; other errors (bad input) say nothing
            raise
        if not breaker.healthy:
            breaker.succeeded()
        return result

    guarded.__omniq_guarded__ = True  # type: ignore[attr-defined]
    return guarded


def guard_methods(cls: type) -> None:
    """Puts the breaker around every method of the storage interfaces (the public coroutine
    methods of the classes in ``omniq.storage.base``: what the worker, the scheduler and the
    façade call) on ``cls``: called by ``Component.__init_subclass__``, so every backend's
    components get it, their overrides included. A backend's own helpers are left alone."""
    api = {
        name
        for klass in cls.__mro__
        if klass.__module__.startswith(_INTERFACES)
        for name, member in vars(klass).items()
        if not name.startswith("_") and name not in UNGATED and inspect.iscoroutinefunction(member)
    }
    for name in api:
        member = next(vars(k)[name] for k in cls.__mro__ if name in vars(k))
        if inspect.iscoroutinefunction(member) and not getattr(member, "__omniq_guarded__", False):
            setattr(cls, name, _guarded(member))


#: the modules of the storage interfaces, whose public coroutine methods are guarded
_INTERFACES = "omniq.storage.base."


__all__ = [
    "UNGATED",
    "BreakerConfig",
    "BreakerState",
    "CircuitBreaker",
    "away",
    "connect_event_store",
    "guard_methods",
    "reported",
]
