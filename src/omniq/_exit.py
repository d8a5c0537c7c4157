"""What a program leaves open is closed when it ends, on its own event loop, with one
``ResourceWarning`` naming it, so that nothing OmniQ holds ever blocks or garbles interpreter exit.

A newcomer's script ends with ``asyncio.run(main())`` and no ``close()``, or with a sync ``OmniQ``
whose ``stop_worker()`` was forgotten. Connections, the SQLite connection thread and a running
worker belong to an event loop and can only be closed on it, while it still runs:

- ``asyncio.run`` (and anyio, and pytest-asyncio) cancel the remaining tasks, then call
  ``loop.shutdown_asyncgens()``, then close the loop. While a loop holds anything open, a small
  guard (an async generator suspended at its one ``yield``) is parked on it; ``shutdown_asyncgens``
  finalizes it, and its ``finally`` closes what is left, on that loop, before the loop closes.
- the sync API's loop (``omniq._sync``) runs in a daemon thread until the interpreter exits; its
  ``atexit`` hook calls :func:`close_open` on that loop before stopping it.

A loop closed without ``shutdown_asyncgens`` (a hand-driven ``run_until_complete`` and
``close()``) leaves its objects behind; :func:`_at_exit` then only reports them, and detaches the
guard so it is not finalized on a closed loop ("Event loop is closed").

Each object registers itself where it opens (:func:`opened`) and unregisters where it closes
(:func:`closed`); when none is open, no guard exists.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import warnings
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field

from omniq.config import get_logger

log = get_logger("exit")

#: how long closing the leftovers of one loop may take in all; exit must stay well under a second
CLOSE_DEADLINE = 0.75

#: close order: a worker stops (hands its tasks back) before the stores it writes to close
WORKER, COMPONENT, CONNECTION = 0, 1, 2


@dataclass(eq=False)
class _Open:
    obj: object
    what: str
    close: Callable[[], Awaitable[object]]
    order: int


@dataclass(eq=False)
class _Loop:
    open: dict[int, _Open] = field(default_factory=dict)
    guard: AsyncGenerator[None, None] | None = None
    #: set when the guard is closed by us rather than by the loop's shutdown
    detached: bool = False


_LOOPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Loop] = weakref.WeakKeyDictionary()


def opened(
    obj: object, what: str, close: Callable[[], Awaitable[object]], *, order: int = COMPONENT
) -> None:
    """Records that ``obj`` (described as ``what``) is open on the running loop until
    :func:`closed`; ``close`` closes it. Outside a running loop nothing is recorded."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    state = _LOOPS.get(loop)
    if state is None:
        state = _LOOPS[loop] = _Loop()
    state.open[id(obj)] = _Open(obj, what, close, order)
    if state.guard is None:
        state.detached = False
        state.guard = _guard(state)
        _step(state.guard.__anext__())  # to its yield: the loop now knows it (firstiter hook)


def closed(obj: object) -> None:
    """``obj`` was closed by its owner: nothing to do for it at exit."""
    for state in list(_LOOPS.values()):
        entry = state.open.get(id(obj))
        if entry is not None and entry.obj is obj:
            del state.open[id(obj)]
            if not state.open:
                _detach(state)
            return


def _step(awaitable: Awaitable[object]) -> None:
    """Drives a generator step that never suspends (no ``await`` is reached) synchronously."""
    with contextlib.suppress(StopIteration, StopAsyncIteration):
        awaitable.__await__().send(None)


def _detach(state: _Loop) -> None:
    guard, state.guard = state.guard, None
    if guard is not None:
        state.detached = True
        _step(guard.aclose())


async def _guard(state: _Loop) -> AsyncGenerator[None, None]:
    # holds no reference to its loop: a loop nobody uses any more can still be collected
    try:
        yield
    finally:
        if not state.detached:  # finalized by the loop's shutdown: close what is left on it
            state.guard = None
            await _close(asyncio.get_running_loop(), state)


async def close_open(deadline: float = CLOSE_DEADLINE) -> None:
    """Closes, with one ``ResourceWarning``, whatever is still open on the running loop."""
    loop = asyncio.get_running_loop()
    state = _LOOPS.get(loop)
    if state is not None:
        _detach(state)
        await _close(loop, state, deadline)


async def _close(
    loop: asyncio.AbstractEventLoop, state: _Loop, deadline: float = CLOSE_DEADLINE
) -> None:
    entries = sorted(state.open.values(), key=lambda e: e.order)
    state.open.clear()
    if not entries:
        return
    _warn(entries, "closed them at exit")
    end = loop.time() + deadline
    for entry in entries:
        remaining = end - loop.time()
        if remaining <= 0:
            log.warning("gave up closing %s at exit: out of time", entry.what)
            continue
        try:
            await asyncio.wait_for(entry.close(), remaining)
        except TimeoutError:
            log.warning("gave up closing %s at exit after %.2fs", entry.what, deadline)
        except Exception as exc:  # exit goes on: one failing close must not keep the others open
            log.warning("closing %s at exit failed: %s: %s", entry.what, type(exc).__name__, exc)


def _warn(entries: list[_Open], outcome: str) -> None:
    names = ", ".join(dict.fromkeys(e.what for e in entries))
    warnings.warn(
        f"OmniQ objects were left open: {names}; OmniQ {outcome}. Close them yourself: "
        "`await oq.close()` / `oq.stop_worker()`, or `async with` / `with`",
        ResourceWarning,
        stacklevel=2,
    )


def _at_exit() -> None:
    """Loops that closed without finalizing their guard: report what they left, and detach the
    guard so the interpreter does not finalize it on a closed loop."""
    for loop, state in list(_LOOPS.items()):
        if loop.is_running():
            continue  # the sync API's loop: its own exit hook closes it
        entries = list(state.open.values())
        state.open.clear()
        _detach(state)
        if entries:
            _warn(entries, "could not close them: their event loop was already closed")


atexit.register(_at_exit)

__all__ = ["COMPONENT", "CONNECTION", "WORKER", "close_open", "closed", "opened"]
