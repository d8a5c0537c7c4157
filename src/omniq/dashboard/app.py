"""The Litestar application: HTML pages, their streams and actions, and the JSON REST API.

``create_app(oq)`` works from any :class:`~omniq.AsyncOmniQ` (or sync ``OmniQ``): it reads and
acts only through the application's task queue, result store and event store. The REST API is
described by Litestar's OpenAPI schema at ``/schema`` (Swagger UI at ``/schema/swagger``).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from datastar_py.litestar import DatastarResponse, read_signals
from datastar_py.sse import ServerSentEventGenerator as SSE
from htpy import div
from litestar import Litestar, Request, Response, Router, get, post
from litestar.exceptions import NotFoundException, ValidationException
from litestar.logging.config import LoggingConfig
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.static_files import create_static_files_router
from litestar.status_codes import HTTP_200_OK

from omniq._redact import redact_text
from omniq._sync import unwrap
from omniq.cli.source import describe
from omniq.core import AsyncOmniQ
from omniq.dashboard import pages
from omniq.dashboard.board import Board, task_filter
from omniq.dashboard.queries import TaskFilter
from omniq.dashboard.security import Credentials, SecurityMiddleware
from omniq.dashboard.ui import Ctx, Node, banner, layout, toast
from omniq.exceptions import OmniQError, TaskNotFound

STATIC = Path(__file__).parent / "static"
TASK_ACTIONS = ("cancel", "requeue")
SCHEDULE_ACTIONS = ("pause", "resume", "run", "delete")


def create_app(
    oq: Any,
    *,
    credentials: Credentials | None = None,
    refresh: float = 1.0,
    metrics_interval: float = 2.0,
    owns_app: bool = True,
    debug: bool = False,
) -> Litestar:
    """The dashboard of ``oq``. ``owns_app``: the dashboard connects the application at start
    and closes it at shutdown (False when it runs beside a worker that owns it)."""
    app = unwrap(oq)
    if not isinstance(app, AsyncOmniQ):
        raise TypeError(f"create_app needs an OmniQ or AsyncOmniQ, got {oq!r}")
    board = Board(app, refresh=refresh, metrics_interval=metrics_interval, owns_app=owns_app)
    where = f"{describe(app)} · {app.project_name}"
    creds = credentials or Credentials()

    def ctx(request: Request[Any, Any, Any], view: str, **params: str) -> Ctx:
        """A new client id per page load: the page's stream and its reopenings carry it."""
        base = request.scope.get("root_path", "")
        query = "&".join(
            [f"cid={secrets.token_urlsafe(9)}", *(f"{k}={quote(v)}" for k, v in params.items())]
        )
        return Ctx(base, request.scope["state"]["csrf"], f"{base}/ui/stream/{view}?{query}")

    async def page(
        request: Request[Any, Any, Any],
        view: str,
        heading: str,
        signals: dict[str, Any],
        *,
        filters: Callable[[Ctx, list[str]], Node] | None = None,
        **params: str,
    ) -> Response[str]:
        """The whole page, its live part rendered now so it shows before the stream opens."""
        c = ctx(request, view, **params)
        try:
            live: list[Node] = await board.fragments(view, c, {**signals, **params})
        except TaskNotFound as exc:
            raise NotFoundException(str(exc)) from None
        except (OmniQError, OSError) as exc:
            live = [
                banner(f"cannot read the backend: {type(exc).__name__}: {redact_text(str(exc))}")
            ]
        # after the live part: the queue names come from the counts it has just read
        top = filters(c, await board.queue_names()) if filters is not None else None
        html = layout(
            page=view,
            heading=heading,
            where=where,
            content=div(".page")[top, live],
            stream=c.stream,
            signals=signals,
            base=c.base,
        )
        return Response(html, media_type="text/html", headers={"cache-control": "no-store"})

    def filter_signals(queue: str, status: str, func: str, search: str) -> dict[str, Any]:
        signals = {
            "queue": queue,
            "status": status,
            "func": func,
            "search": search,
            "page": 0,
            "after": "",
            "before": "",
        }
        _parse(lambda: task_filter(signals))
        return signals

    # -- pages ---------------------------------------------------------------------------------
    @get("/", include_in_schema=False)
    async def overview_page(request: Request[Any, Any, Any]) -> Response[str]:
        return await page(request, "overview", "Overview", {})

    @get("/tasks", include_in_schema=False)
    async def tasks_page(
        request: Request[Any, Any, Any],
        queue: FromQuery[str] = "",
        status: FromQuery[str] = "",
        func: FromQuery[str] = "",
        search: FromQuery[str] = "",
    ) -> Response[str]:
        signals = filter_signals(queue, status, func, search)
        functions = await board.function_names()

        def filters(c: Ctx, queue_names: list[str]) -> Node:
            return pages.task_filters(c, queue_names, functions=functions)

        return await page(request, "tasks", "Tasks", signals, filters=filters)

    @get("/tasks/{task_id:str}", include_in_schema=False)
    async def task_page(request: Request[Any, Any, Any], task_id: FromPath[str]) -> Response[str]:
        return await page(request, "task", "Task", {}, task_id=task_id)

    @get("/schedules", include_in_schema=False)
    async def schedules_page(request: Request[Any, Any, Any]) -> Response[str]:
        return await page(request, "schedules", "Schedules", {})

    @get("/dead", include_in_schema=False)
    async def dead_page(
        request: Request[Any, Any, Any], queue: FromQuery[str] = ""
    ) -> Response[str]:
        signals = filter_signals(queue, "", "", "")
        return await page(request, "dead", "Dead letters", signals, filters=pages.queue_filter)

    @get("/events", include_in_schema=False)
    async def events_page(
        request: Request[Any, Any, Any],
        queue: FromQuery[str] = "",
        etype: FromQuery[str] = "",
        search: FromQuery[str] = "",
    ) -> Response[str]:
        signals = {"queue": queue, "etype": etype, "search": search}
        return await page(request, "events", "Events", signals, filters=pages.event_filters)

    # -- live updates and actions ------------------------------------------------------------
    @get("/ui/stream/{view:str}", include_in_schema=False)
    async def stream(
        request: Request[Any, Any, Any],
        view: FromPath[str],
        cid: FromQuery[str] = "",
        task_id: FromQuery[str] = "",
    ) -> DatastarResponse:
        if view not in ("overview", "tasks", "task", "schedules", "dead", "events"):
            raise NotFoundException(f"no page called {view!r}")
        signals = dict(await read_signals(request) or {})
        if task_id:
            signals["task_id"] = task_id
        _parse(lambda: task_filter(signals) if view in ("tasks", "dead") else None)
        base = request.scope.get("root_path", "")
        query = f"cid={quote(cid)}" + (f"&task_id={quote(task_id)}" if task_id else "")
        c = Ctx(base, request.scope["state"]["csrf"], f"{base}/ui/stream/{view}?{query}")
        return DatastarResponse(board.stream(view, c, signals, cid))

    @post("/ui/tasks/{task_id:str}/{action:str}", include_in_schema=False, status_code=HTTP_200_OK)
    async def task_action_ui(task_id: FromPath[str], action: FromPath[str]) -> DatastarResponse:
        if action not in TASK_ACTIONS:
            raise NotFoundException(f"no task action {action!r}")
        verb = "cancelled" if action == "cancel" else "requeued"

        def said(done: Any) -> str:
            return f"task {task_id} {verb}" if done else f"task {task_id}: nothing to {action}"

        return await ui_action(lambda: _task_action(board, task_id, action), said)

    @post(
        "/ui/schedules/{schedule_id:str}/{action:str}",
        include_in_schema=False,
        status_code=HTTP_200_OK,
    )
    async def schedule_action_ui(
        schedule_id: FromPath[str], action: FromPath[str]
    ) -> DatastarResponse:
        if action not in SCHEDULE_ACTIONS:
            raise NotFoundException(f"no schedule action {action!r}")

        def said(done: Any) -> str:
            if action == "run":
                return f"schedule {schedule_id}: enqueued task {done}"
            return f"schedule {schedule_id}: {action} " + ("done" if done else "changed nothing")

        return await ui_action(
            lambda: board.act(lambda: board.q.schedule_action(schedule_id, action)), said
        )

    @post("/ui/dead/requeue-all", include_in_schema=False, status_code=HTTP_200_OK)
    async def requeue_all_ui(request: Request[Any, Any, Any]) -> DatastarResponse:
        signals = await read_signals(request) or {}
        queue = str(signals.get("queue") or "") or None
        return await ui_action(
            lambda: board.act(lambda: board.q.requeue_all_dead(queue)),
            lambda moved: f"requeued {moved} dead task(s)",
        )

    @post("/ui/dead/purge", include_in_schema=False, status_code=HTTP_200_OK)
    async def purge_dead_ui(request: Request[Any, Any, Any]) -> DatastarResponse:
        signals = await read_signals(request) or {}
        queue = str(signals.get("queue") or "") or None
        return await ui_action(
            lambda: board.act(lambda: board.q.purge_dead(queue)),
            lambda purged: f"deleted {purged} dead task(s)",
        )

    # -- JSON API ------------------------------------------------------------------------------
    @get("/overview", summary="Queues, workers and recent throughput in one call")
    async def api_overview() -> dict[str, Any]:
        return {
            "queues": await board.q.queues(),
            "workers": await board.q.workers(),
            "metrics": metrics(board),
        }

    @get("/queues", summary="Every queue: waiting size and counts by status")
    async def api_queues() -> dict[str, Any]:
        return await board.q.queues()

    @get("/workers", summary="Live workers (null when the backend keeps no registry)")
    async def api_workers() -> list[dict[str, Any]] | None:
        return await board.q.workers()

    @get("/metrics", summary="Throughput and failure rate per sampling interval")
    async def api_metrics() -> dict[str, Any]:
        return metrics(board)

    @get("/tasks", summary="Tasks, newest first, filtered by queue, status, function or id")
    async def api_tasks(
        queue: FromQuery[str] = "",
        status: FromQuery[str] = "",
        func: FromQuery[str] = "",
        search: FromQuery[str] = "",
        limit: FromQuery[int] = 50,
        page: FromQuery[int] = 0,
        after: FromQuery[str] = "",
        before: FromQuery[str] = "",
    ) -> dict[str, Any]:
        """A page starts after the task ``after`` (older ones: the ``after`` of the answer
        reads the next page) or before ``before`` (newer ones); ``page`` (by offset) is kept
        for compatibility and costs more the deeper it goes."""
        f = _parse(
            lambda: TaskFilter.parse(queue, status, func, search, limit, page, after, before)
        )
        return (await board.q.tasks(f)).to_json()

    @get("/tasks/{task_id:str}", summary="One task: arguments, state, result, events, TTLs")
    async def api_task(task_id: FromPath[str]) -> dict[str, Any]:
        return await board.q.task(task_id)

    @post(
        "/tasks/{task_id:str}/{action:str}",
        status_code=HTTP_200_OK,
        summary="cancel or requeue a task",
    )
    async def api_task_action(task_id: FromPath[str], action: FromPath[str]) -> dict[str, Any]:
        if action not in TASK_ACTIONS:
            raise NotFoundException(f"no task action {action!r}: use one of {TASK_ACTIONS}")
        return {
            "task_id": task_id,
            "action": action,
            "done": await _task_action(board, task_id, action),
        }

    @get("/schedules", summary="Schedules, active ones first by next run")
    async def api_schedules(
        schedule_state: Annotated[str, QueryParameter(name="state")] = "",
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = await _parse_async(board.q.schedules(schedule_state or None))
        return rows

    @post(
        "/schedules/{schedule_id:str}/{action:str}",
        status_code=HTTP_200_OK,
        summary="pause, resume, run (enqueue now) or delete a schedule",
    )
    async def api_schedule_action(
        schedule_id: FromPath[str], action: FromPath[str]
    ) -> dict[str, Any]:
        if action not in SCHEDULE_ACTIONS:
            raise NotFoundException(f"no schedule action {action!r}: use one of {SCHEDULE_ACTIONS}")
        outcome = await board.act(lambda: board.q.schedule_action(schedule_id, action))
        key = "task_id" if action == "run" else "done"
        return {"schedule_id": schedule_id, "action": action, key: outcome}

    @get("/dead", summary="Dead tasks (the dead-letter queue), newest first")
    async def api_dead(
        queue: FromQuery[str] = "",
        limit: FromQuery[int] = 50,
        page: FromQuery[int] = 0,
        after: FromQuery[str] = "",
        before: FromQuery[str] = "",
    ) -> dict[str, Any]:
        f = _parse(
            lambda: TaskFilter.parse(
                queue=queue, limit=limit, page=page, after=after, before=before
            )
        )
        page_ = await board.q.dead(f.queue, f.limit, f.page, after=f.after, before=f.before)
        return page_.to_json()

    @post("/dead/requeue", status_code=HTTP_200_OK, summary="Requeue every dead task (of a queue)")
    async def api_requeue_all(queue: FromQuery[str] = "") -> dict[str, Any]:
        return {"requeued": await board.act(lambda: board.q.requeue_all_dead(queue or None))}

    @post(
        "/dead/purge",
        status_code=HTTP_200_OK,
        summary="Delete every dead task (of a queue); their results expire by their own TTL",
    )
    async def api_purge_dead(queue: FromQuery[str] = "") -> dict[str, Any]:
        purged = await board.act(lambda: _parse_async(board.q.purge_dead(queue or None)))
        return {"purged": purged}

    @get("/events", summary="Events, newest first (null when no event store is configured)")
    async def api_events(
        task_id: FromQuery[str] = "",
        event_type: FromQuery[str] = "",
        queue: FromQuery[str] = "",
        limit: FromQuery[int] = 100,
    ) -> list[dict[str, Any]] | None:
        if not board.q.has_events:
            return None
        if not 1 <= limit <= 1000:
            raise ValidationException(f"limit must be between 1 and 1000, got {limit!r}")
        rows: list[dict[str, Any]] = await _parse_async(
            board.q.events(
                task_id=task_id or None,
                event_types=[event_type] if event_type else None,
                queue=queue or None,
                limit=limit,
                descending=True,
            )
        )
        return rows

    @get("/health", summary="The backends' health")
    async def api_health() -> dict[str, Any]:
        return await app.health_check()

    api = Router(
        path="/api",
        route_handlers=[
            api_overview,
            api_queues,
            api_workers,
            api_metrics,
            api_tasks,
            api_task,
            api_task_action,
            api_schedules,
            api_schedule_action,
            api_dead,
            api_requeue_all,
            api_purge_dead,
            api_events,
            api_health,
        ],
        tags=["omniq"],
    )

    def not_found(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
        return Response({"detail": str(exc)}, status_code=404)

    def backend_down(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
        detail = f"cannot reach the backend: {type(exc).__name__}: {redact_text(str(exc))}"
        return Response({"detail": detail}, status_code=503)

    return Litestar(
        route_handlers=[
            overview_page,
            tasks_page,
            task_page,
            schedules_page,
            dead_page,
            events_page,
            stream,
            task_action_ui,
            schedule_action_ui,
            requeue_all_ui,
            purge_dead_ui,
            api,
            create_static_files_router(
                path="/static", directories=[STATIC], include_in_schema=False
            ),
        ],
        middleware=[DefineMiddleware(SecurityMiddleware, credentials=creds)],
        on_startup=[board.start],
        on_shutdown=[board.stop],
        exception_handlers={
            TaskNotFound: not_found,
            OmniQError: backend_down,
            OSError: backend_down,
        },
        openapi_config=OpenAPIConfig(
            title="OmniQ dashboard API",
            version="1",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
        ),
        debug=debug,
        # Litestar's own logger only: its default also puts a handler on the root logger, and
        # beside a worker every line the worker logged was printed twice, once in each format
        logging_config=LoggingConfig(configure_root_logger=False),
    )


def metrics(board: Board) -> dict[str, Any]:
    return {
        "interval": board.sampler.interval,
        "points": [
            {
                "at": p.at.isoformat(),
                "throughput": p.throughput,
                "failures": p.failures,
                "failure_rate": p.failure_rate,
            }
            for p in board.sampler.points
        ],
    }


async def _task_action(board: Board, task_id: str, action: str) -> bool:
    run = board.q.cancel if action == "cancel" else board.q.requeue
    done: bool = await board.act(lambda: run(task_id))
    return done


async def ui_action(
    run: Callable[[], Awaitable[Any]], said: Callable[[Any], str]
) -> DatastarResponse:
    """An action from a page answers with a toast, its failure too (the page stays put)."""
    try:
        outcome = await run()
    except (OmniQError, ValueError, OSError) as exc:
        return done_toast(redact_text(str(exc)), ok=False)
    return done_toast(said(outcome), ok=outcome is not False)


def done_toast(message: str, *, ok: bool = True) -> DatastarResponse:
    return DatastarResponse(SSE.merge_fragments(str(toast(message, ok=ok))))


def _parse(make: Any) -> Any:
    try:
        return make()
    except ValueError as exc:
        raise ValidationException(str(exc)) from None


async def _parse_async(work: Any) -> Any:
    try:
        return await work
    except ValueError as exc:
        raise ValidationException(str(exc)) from None


__all__ = ["create_app"]
