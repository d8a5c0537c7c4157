"""Waiting through a server outage: the one loop by which a network result storage keeps a
result wait alive while its server restarts, fails over or hangs (Redis and PostgreSQL), and
the one way an outage is logged (:class:`OutageLog`: one line, not one per reconnection).

A caller of ``wait(task_id, timeout=None)`` asked to wait; a server gone for a few seconds is
not an answer. Each read that fails for a reason the store calls transient is tried again, with
a backoff from 50 ms to 1 s, until the caller's own timeout runs out; only then does the wait
raise :class:`~omniq.exceptions.BackendUnavailable`, naming the server (never its password) and
the last error. Before, 300 of 300 PostgreSQL waiters raised within a second of a restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from omniq._redact import redact_text
from omniq.exceptions import BackendUnavailable

T = TypeVar("T")

#: Backoff of a waiter whose reads fail: first and longest pause.
RETRY_FIRST = 0.05
RETRY_MAX = 1.0

log = logging.getLogger("omniq.storage")


async def wait_through_outages(
    attempt: Callable[[float | None], Awaitable[T]],
    timeout: float | None,
    *,
    transient: Callable[[BaseException], bool],
    server: Callable[[], str],
    what: str,
) -> T:
    """``await attempt(remaining)`` until it returns, trying again after an exception that
    ``transient`` accepts, within ``timeout`` seconds in all (None: without limit). When the
    time is up, raises BackendUnavailable: "<what>: <server()> did not answer within ...".
    ``server()`` must already be free of credentials (a ``describe()``)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    pause = RETRY_FIRST
    while True:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            return await attempt(remaining)
        except Exception as exc:
            if not transient(exc):
                raise
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise BackendUnavailable(
                    f"{what}: {server()} did not answer within the {timeout:g}s timeout "
                    f"({type(exc).__name__}: {redact_text(str(exc))})"
                ) from None
            log.debug("%s: %s; trying again", what, exc)
            await asyncio.sleep(pause if remaining is None else min(pause, remaining))
            pause = min(pause * 2, RETRY_MAX)


class OutageLog:
    """One warning line per outage of ``server``. Whatever notices first that the server is
    away calls :meth:`begin` (later notices of the same outage say nothing: reconnection loops
    would otherwise log a line, or a traceback, every second); whatever connects again calls
    :meth:`over`, so the next outage is logged again."""

    def __init__(self, logger: logging.Logger, server: str) -> None:
        self._log = logger
        self.server = server
        self.ongoing = False

    def begin(self, what: str) -> None:
        if not self.ongoing:
            self.ongoing = True
            self._log.warning(
                "%s is unreachable (%s); reconnecting in the background, quietly until a "
                "connection succeeds",
                self.server,
                redact_text(what),
            )

    def over(self) -> None:
        if self.ongoing:
            self.ongoing = False
            self._log.info("%s is reachable again", self.server)


__all__ = ["RETRY_FIRST", "RETRY_MAX", "OutageLog", "wait_through_outages"]
