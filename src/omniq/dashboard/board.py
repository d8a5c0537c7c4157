"""The live side of the dashboard: what each page's stream sends, and when.

Every page opens one server-sent-event stream when it loads. The stream renders the page's live
fragments at once, then again every ``refresh`` seconds (longer when rendering is slow, see
:func:`omniq.dashboard.metrics.pace`), as soon as an action was taken here (:meth:`Board.poke`),
or as soon as the counts by queue and status changed (a task enqueued, finished, cancelled...
by any process): one watcher reads the counts every ``watch`` seconds for every open page (a few
rows where the store keeps them), so a change shows within about ``watch`` seconds without each
page rendering that often. The stream sends only the fragments whose HTML changed. A page that changes its
filters reopens its stream under the same client id; the older stream of that id ends, so a
browser tab never holds two.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from datastar_py.sse import DatastarEvent
from datastar_py.sse import ServerSentEventGenerator as SSE
from htpy import div, section

from omniq._redact import redact_text
from omniq.core import AsyncOmniQ
from omniq.dashboard import overview, pages
from omniq.dashboard.metrics import Sampler, pace
from omniq.dashboard.queries import Queries, TaskFilter
from omniq.dashboard.ui import Ctx, Node, banner
from omniq.exceptions import OmniQError, TaskNotFound
from omniq.models.limits import LimitUsage
from omniq.storage.base import Capability

log = logging.getLogger("omniq.dashboard")

#: The capability each page reads through, and the id of its live element.
NEEDS = {
    "overview": Capability.LISTING,
    "tasks": Capability.LISTING,
    "dead": Capability.LISTING,
    "schedules": Capability.SCHEDULES,
}
ELEMENT = {"overview": "queues", "tasks": "tasks", "dead": "dead", "schedules": "schedules"}

#: How many events the live stream shows.
EVENT_ROWS = 100


class Board:
    def __init__(
        self,
        app: AsyncOmniQ,
        *,
        refresh: float = 1.0,
        metrics_interval: float = 2.0,
        watch: float = 0.2,
        owns_app: bool = True,
    ) -> None:
        for name, value in (("refresh", refresh), ("watch", watch)):
            if value <= 0:
                raise ValueError(f"dashboard {name} must be positive, got {value!r}")
        self.app = app
        # one reading of the counts serves the watcher, a render, the sampler and every page
        self.q = Queries(app, stats_ttl=min(refresh, metrics_interval, watch))
        self.refresh = refresh
        self.watch = watch
        self.owns_app = owns_app
        self.sampler = Sampler(self.q.stats, interval=metrics_interval)
        self._live: set[_Live] = set()
        self._by_client: dict[str, _Live] = {}
        self._watcher: asyncio.Task[None] | None = None
        # the counts the open pages were last woken for (None while no page is open)
        self._counts: dict[str, dict[str, int]] | None = None

    async def start(self) -> None:
        await self.app.connect()
        if self.app.task_queue.supports(Capability.LISTING):  # both read the counts
            self.sampler.start()
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        await self.sampler.stop()
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        for live in self._live:
            live.end()
        if self.owns_app:
            await self.app.close()

    def poke(self) -> None:
        """Something changed here (an action): every open stream renders again now."""
        self.q.forget()
        self._wake_all()

    def _wake_all(self) -> None:
        for live in self._live:
            live.wake.set()

    async def _watch(self) -> None:
        """Wakes the open streams when the counts by queue and status change. Reads them only
        while a page is open, every ``watch`` seconds (spaced out like any work of the
        dashboard's own when the reading is slow, see :func:`pace`)."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            if self._live:
                try:
                    counts = await self.q.stats(fresh=True)
                except Exception as exc:  # a backend hiccup: the streams show it themselves
                    log.debug("dashboard watcher: %s: %s", type(exc).__name__, exc)
                else:
                    if self._counts is not None and counts != self._counts:
                        self._wake_all()
                    self._counts = counts
            else:
                self._counts = None
            await asyncio.sleep(pace(self.watch, loop.time() - started))

    async def _baseline(self) -> None:
        """The counts before a page's first render, when the watcher has none: a change that
        lands between that render and the watcher's next reading still wakes the page."""
        if self._counts is None and self._watcher is not None:
            with contextlib.suppress(OmniQError, OSError):
                self._counts = await self.q.stats(fresh=True)

    # -- rendering ---------------------------------------------------------------------------
    async def queue_names(self) -> list[str]:
        try:
            return list(await self.q.queues())
        except (OmniQError, OSError):
            return list(self.app.task_queue.queues or [])

    async def function_names(self) -> list[str]:
        """The stored functions' names where the store reads them from an index, else none."""
        try:
            return await self.q.functions()
        except (OmniQError, OSError):
            return []

    async def limits(self) -> LimitUsage | None:
        """The limits panel's data; None where the backend keeps no limits."""
        if not self.app.task_queue.supports(Capability.LIMITS):
            return None
        try:
            return await self.app.task_queue.limit_usage()
        except (OmniQError, OSError):
            return LimitUsage()

    async def fragments(self, view: str, ctx: Ctx, signals: dict[str, Any]) -> list[Node]:
        """The live fragments of one page for the given signals (its filters); a page whose
        capability the backend does not offer says so instead."""
        need = NEEDS.get(view)
        if need is not None and not self.app.task_queue.supports(need):
            text = (
                f"The {self.app.task_queue.backend_name} backend does not offer "
                f"{need.value}: this page has nothing to show on it."
            )
            return [section(f"#{ELEMENT[view]}.panel")[div(".empty")[text]]]
        if view == "overview":
            return overview.overview(
                ctx,
                await self.q.queues(),
                await self.q.workers(),
                list(self.sampler.points),
                await self.limits(),
            )
        if view == "tasks":
            return [pages.task_table(ctx, await self.q.tasks(task_filter(signals)))]
        if view == "task":
            task_id = str(signals.get("task_id") or "")
            return [pages.task_detail(ctx, await self.q.task(task_id), self.q.has_events)]
        if view == "schedules":
            return [pages.schedule_table(ctx, await self.q.schedules())]
        if view == "dead":
            f = task_filter(signals)
            page = await self.q.dead(f.queue, f.limit, f.page, after=f.after, before=f.before)
            return [pages.dead_table(ctx, page)]
        if view == "events":
            return [pages.event_table(ctx, await self.events(signals))]
        raise ValueError(f"no page called {view!r}")

    async def events(self, signals: dict[str, Any]) -> list[dict[str, Any]] | None:
        if not self.q.has_events:
            return None
        etype = str(signals.get("etype") or "")
        return await self.q.events(
            task_id=str(signals.get("search") or "").strip() or None,
            event_types=[etype] if etype else None,
            queue=str(signals.get("queue") or "") or None,
            limit=EVENT_ROWS,
            descending=True,
        )

    async def stream(
        self, view: str, ctx: Ctx, signals: dict[str, Any], cid: str
    ) -> AsyncIterator[DatastarEvent]:
        """The page's updates until the browser leaves, reopens the stream, or the server
        stops. A failing backend shows a banner and the stream keeps trying."""
        live = _Live()
        self._live.add(live)
        if cid:
            older = self._by_client.get(cid)
            if older is not None:
                older.end()
            self._by_client[cid] = live
        sent: dict[int, str] = {}
        problem_shown = False
        loop = asyncio.get_running_loop()
        try:
            await self._baseline()
            while not live.ended:
                started = loop.time()
                try:
                    nodes = await self.fragments(view, ctx, signals)
                except (OmniQError, OSError) as exc:
                    problem_shown = True
                    text = f"cannot read the backend: {type(exc).__name__}: {exc}"
                    if isinstance(exc, TaskNotFound):
                        text = str(exc)
                    yield SSE.merge_fragments(str(banner(redact_text(text))))
                else:
                    if problem_shown:
                        problem_shown = False
                        yield SSE.merge_fragments(str(banner(None)))
                    for n, node in enumerate(nodes):
                        html = str(node)
                        if sent.get(n) != html:
                            sent[n] = html
                            yield SSE.merge_fragments(html)
                # a render that is slow on a big store spaces out the next one (see pace), even
                # when woken: a page renders at most BUSY_SHARE of the time
                took = loop.time() - started
                await live.sleep(pace(self.refresh, took), pace(0.0, took))
        finally:
            self._live.discard(live)
            if cid and self._by_client.get(cid) is live:
                del self._by_client[cid]

    async def act(self, action: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await action()
        finally:
            self.poke()


class _Live:
    """One open stream: woken early by an action (:meth:`Board.poke`), ended by a newer stream
    of the same page or by the server stopping."""

    __slots__ = ("ended", "wake")

    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self.ended = False

    def end(self) -> None:
        self.ended = True
        self.wake.set()

    async def sleep(self, seconds: float, at_least: float = 0.0) -> None:
        """Up to ``seconds``, or until woken, but never less than ``at_least``."""
        loop = asyncio.get_running_loop()
        until = loop.time() + at_least
        # asyncio.timeout, not 3.11's wait_for: that one loses a cancel landing as the stream
        # is woken, and the stream of a closed page would render on
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.wake.wait()
        if not self.ended and loop.time() < until:
            await asyncio.sleep(until - loop.time())
        self.wake.clear()


def task_filter(signals: dict[str, Any]) -> TaskFilter:
    def text(name: str) -> str:
        value = signals.get(name)
        return "" if value is None else str(value)

    try:
        page = int(signals.get("page") or 0)
    except (TypeError, ValueError):
        raise ValueError(f"page must be a whole number, got {signals.get('page')!r}") from None
    return TaskFilter.parse(
        queue=text("queue"),
        status=text("status"),
        func=text("func"),
        search=text("search"),
        page=page,
        after=text("after"),
        before=text("before"),
    )


__all__ = ["Board", "task_filter"]
