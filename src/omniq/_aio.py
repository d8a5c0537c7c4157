"""Small asyncio helpers shared by the worker and the scheduler."""

from __future__ import annotations

import asyncio


async def cancel_and_wait(*tasks: asyncio.Task[object], retry_every: float = 0.25) -> None:
    """Cancels ``tasks`` and returns once all are done, cancelling again any that still runs
    after ``retry_every`` seconds.

    Why again: a client library may swallow a cancellation that lands at the wrong moment
    (redis-py does, inside its timeout handling: redis/redis-py#2028, #2551), and a background
    loop that lost its one cancel would run on forever, so ``stop()`` would never return. The
    next cancel finds the loop somewhere else (asleep, most likely) and ends it.
    """
    pending = {t for t in tasks if not t.done()}
    for task in pending:
        task.cancel()
    while pending:
        _, pending = await asyncio.wait(pending, timeout=retry_every)
        for task in pending:
            task.cancel()
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: a loop that died earlier is not reported at exit


def raise_if_cancelled() -> None:
    """Raises ``CancelledError`` in a task asked to stop whose cancellation a client library
    swallowed (redis-py does, see :func:`cancel_and_wait`).

    ``asyncio.run`` cancels each task left at exit once and then waits for all of them: a
    background loop that lost that one cancel runs on forever and the script never exits. The
    task still counts the request (``Task.cancelling``), so a loop that checks it at the top of
    each turn ends as it was asked to.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def idle(seconds: float) -> None:
    """``asyncio.sleep`` for the turns of a background loop, after :func:`raise_if_cancelled`."""
    raise_if_cancelled()
    await asyncio.sleep(seconds)


__all__ = ["cancel_and_wait", "idle", "raise_if_cancelled"]
