"""``omniq tasks``, ``schedules``, ``dlq``, ``purge`` and ``cleanup``: look into a backend and act
on it from a terminal, with rich tables for people and ``--json`` for scripts.

They read and act through :class:`omniq.dashboard.queries.Queries`, the layer the web dashboard
uses, so both show the same data; it needs no web dependency.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, TypeVar

import msgspec
import typer
from rich import box
from rich.console import Console, Group
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from omniq._time import utcnow
from omniq.cli.commands import (
    AppOption,
    ConfigOption,
    ProjectOption,
    UrlOption,
    _guard_backend,
    _run,
    app,
)
from omniq.cli.fast import fail, run_guarded
from omniq.cli.source import AppSource, load_app
from omniq.dashboard.queries import Queries, TaskFilter, TaskPage
from omniq.queue.builder import validate_queue_name

T = TypeVar("T")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
PageOption = Annotated[
    int,
    typer.Option("--page", help="Page, 0 = newest (at most 10,000 tasks deep; deeper: --after)."),
]
AfterOption = Annotated[
    str | None,
    typer.Option(
        "--after", help="Start after this task (the cursor the previous page printed): older ones."
    ),
]
EventsOption = Annotated[
    bool, typer.Option("--events", help="With --url: read task events from that backend too.")
]

STATUS_STYLE = {
    "pending": "blue",
    "waiting": "magenta",
    "running": "yellow",
    "success": "green",
    "failed": "dark_orange",
    "dead": "bold red",
    "cancelled": "dim",
    "expired": "yellow",
    "active": "green",
    "paused": "dim",
    "finished": "dim",
}

tasks_app = typer.Typer(
    help="List, filter, inspect, cancel and requeue tasks.", no_args_is_help=True
)
schedules_app = typer.Typer(
    help="List schedules; pause, resume, run now or delete one.", no_args_is_help=True
)
dlq_app = typer.Typer(
    help="The dead-letter queue: tasks out of attempts. List, requeue or delete them.",
    no_args_is_help=True,
)
app.add_typer(tasks_app, name="tasks")
app.add_typer(schedules_app, name="schedules")
app.add_typer(dlq_app, name="dlq")


def to_json(value: Any) -> str:
    """Indented JSON, times as ISO 8601 strings, as ``omniq info --json`` prints."""
    return msgspec.json.format(msgspec.json.encode(value, enc_hook=str), indent=2).decode()


def with_queries(source: AppSource, work: Callable[[Queries], Awaitable[T]]) -> T:
    """Runs ``work`` on the named application and closes it; a backend problem is one line and
    exit status 1, a mistake on the command line exit status 2."""
    selected = run_guarded(lambda: load_app(source))

    async def go() -> T:
        try:
            return await work(Queries(selected.app))
        finally:
            await selected.app.close()

    return run_guarded(lambda: _run(_guard_backend(go())))


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def when(value: str | None) -> str:
    """``12s ago`` / ``in 3m`` for a table cell."""
    if value is None:
        return "·"
    seconds = (utcnow() - datetime.fromisoformat(value)).total_seconds()
    text = _duration(abs(seconds))
    return f"{text} ago" if seconds >= 0 else f"in {text}"


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def id_cell(ident: str, func: str, extra: Text | None = None) -> Group:
    """An id whole, folded onto more lines when it is longer than the column (a schedule's
    occurrence ids are), then lines cut to the column: the function and ``extra``."""
    lines = [
        Text(ident, style="cyan", overflow="fold"),
        Text(func, style="dim", no_wrap=True, overflow="ellipsis"),
    ]
    if extra is not None:
        extra.no_wrap = True
        extra.overflow = "ellipsis"
        lines.append(extra)
    return Group(*lines)


def task_table(rows: list[dict[str, Any]], title: str) -> Table:
    """Fits 80 columns: the whole id (to copy into ``tasks show``), the function under it, and
    under that the error of a failed task, cut to one line (``tasks show`` has all of it)."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("task / function", overflow="ellipsis", ratio=1)
    table.add_column("queue", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("tries", justify="right", no_wrap=True)
    table.add_column("created", justify="right", no_wrap=True)
    for r in rows:
        error = ": ".join(x for x in (r["error_type"], r["error_message"]) if x)
        cell = id_cell(
            r["id"],
            r["func"],
            Text(error if len(error) <= 60 else error[:59] + "…", style="red") if error else None,
        )
        status = status_text(r["status"])
        if r.get("progress"):
            status.append(f" {r['progress']['percent']:g}%", style="bold")
        table.add_row(
            cell,
            r["queue"],
            status,
            f"{r['attempts']}/{r['max_attempts']}",
            when(r["created_at"]),
        )
    return table


# -- tasks ----------------------------------------------------------------------------------------
@tasks_app.command("list")
def tasks_list(
    url: UrlOption = None,
    config: ConfigOption = None,
    app_spec: AppOption = None,
    project: ProjectOption = None,
    queue: Annotated[str | None, typer.Option("--queue", "-q", help="Only this queue.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", "-s", help="Only this status (pending, dead, ...).")
    ] = None,
    func: Annotated[
        str | None, typer.Option("--func", "-f", help="Function name contains this.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Tasks per page (1-1000).")] = 50,
    page: PageOption = 0,
    after: AfterOption = None,
    as_json: JsonOption = False,
) -> None:
    """Tasks, newest first, filtered by queue, status or function name."""
    try:
        f = TaskFilter.parse(
            queue=queue, status=status, func=func, limit=limit, page=page, after=after
        )
    except ValueError as exc:
        fail(str(exc))
    source = AppSource(url=url, config=config, app=app_spec, project=project)
    result = with_queries(source, lambda q: q.tasks(f))
    if as_json:
        typer.echo(to_json(result.to_json()))
        return
    shown = f"{len(result.rows)} task(s)"
    if result.total is not None:
        shown += f" of {result.total}"
    console = Console()
    console.print(task_table(result.rows, f"Tasks · {shown}, page {result.page}"))
    if result.note:
        console.print(Text(result.note, style="yellow"))
    more(console, result)


def more(console: Console, result: TaskPage) -> None:
    """Where the next (older) page starts: a cursor, as cheap at any depth."""
    if result.after:
        console.print(Text(f"more: --after {result.after}", style="dim"))


@tasks_app.command("show")
def tasks_show(
    task_id: Annotated[str, typer.Argument(help="The task's id.")],
    url: UrlOption = None,
    config: ConfigOption = None,
    app_spec: AppOption = None,
    project: ProjectOption = None,
    events: EventsOption = False,
    as_json: JsonOption = False,
) -> None:
    """One task: arguments, state, result, error and traceback, events, TTLs."""
    source = AppSource(url=url, config=config, app=app_spec, project=project, events=events)
    data = with_queries(source, lambda q: q.task(task_id))
    if as_json:
        typer.echo(to_json(data))
        return
    Console().print(render_task(data))
    if events and data["events"] is None:  # asked for, and nothing to read them from
        Console(stderr=True).print(
            "no events: this application keeps none (set OMNIQ_EVENT_STORAGE_TYPE, "
            "or give --url with --events to read them from that backend)"
        )
    elif events and not data["events"]:
        Console(stderr=True).print("no events recorded for this task")


def progress_view(p: dict[str, Any]) -> Table:
    """A task's last progress report: a bar, the percentage and note, and its partial data."""
    view = Table.grid(padding=(0, 2))
    view.add_column(style="bold")
    view.add_column(overflow="fold")
    line = Text.assemble(f"{p['percent']:g}%", ("  " + p["note"]) if p["note"] else "")
    view.add_row("progress", line)
    view.add_row("", ProgressBar(total=1.0, completed=p["fraction"], width=40))
    when_line = f"reported {when(p['updated_at'])} by attempt {p['attempt']}"
    view.add_row("", Text(when_line, style="dim"))
    if p.get("data") is not None:
        view.add_row("", Text(json.dumps(p["data"], ensure_ascii=False), style="dim"))
    return view


def render_task(t: dict[str, Any]) -> Group:
    head = Text.assemble(("task ", "bold"), (t["id"], "cyan"), "  ", status_text(t["status"]))
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim")
    facts.add_column(overflow="fold")
    result = t["result"]
    for name, value in (
        ("function", t["func"]),
        ("queue", t["queue"]),
        ("attempts", f"{t['attempts']} of {t['max_attempts']}"),
        ("worker", t["worker_id"] or "·"),
        ("created", when(t["created_at"])),
        ("started", when(t["started_at"])),
        ("finished", when(t["finished_at"])),
        ("expires", when(t["expires_at"]) if t["expires_at"] else "never"),
        ("result expires", when(result["expires_at"]) if result and result["expires_at"] else "·"),
        ("args", json.dumps(t["args"], ensure_ascii=False)),
        ("kwargs", json.dumps(t["kwargs"], ensure_ascii=False)),
    ):
        facts.add_row(name, value)
    parts: list[Any] = [head, facts]
    if t.get("progress"):
        parts.append(progress_view(t["progress"]))
    if result is not None and result["status"] == "success":
        parts.append(
            Text.assemble(("result ", "bold"), json.dumps(result["result"], ensure_ascii=False))
        )
    if t["error_type"] or t["error_message"]:
        parts.append(Text(f"{t['error_type'] or 'Error'}: {t['error_message'] or ''}", style="red"))
    if t["error_traceback"]:
        parts.append(Text(t["error_traceback"].rstrip(), style="dim red"))
    if t["events"]:
        events = Table(title="Events", title_justify="left", box=box.SIMPLE_HEAD)
        for column in ("time", "event", "attempt", "worker", "details"):
            events.add_column(column, overflow="fold")
        for e in t["events"]:
            events.add_row(
                e["timestamp"][11:23],
                e["event_type"],
                str(e["attempt"] or ""),
                e["worker_id"] or "",
                json.dumps(e["details"]) if e["details"] else "",
            )
        parts.append(events)
    return Group(*parts)


def _task_action(action: str, task_id: str, source: AppSource, as_json: bool) -> None:
    async def act(q: Queries) -> bool:
        return await (q.cancel(task_id) if action == "cancel" else q.requeue(task_id))

    done = with_queries(source, act)
    if as_json:
        typer.echo(to_json({"task_id": task_id, "action": action, "done": done}))
    else:
        verb = "cancelled" if action == "cancel" else "requeued"
        typer.echo(f"task {task_id} {verb}" if done else f"task {task_id}: nothing to {action}")
    raise typer.Exit(0 if done else 1)


@tasks_app.command("cancel")
def tasks_cancel(
    task_id: Annotated[str, typer.Argument(help="The task's id.")],
    url: UrlOption = None,
    config: ConfigOption = None,
    app_spec: AppOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a waiting task, or ask a running one to stop; exit 1 if it had already finished."""
    _task_action("cancel", task_id, AppSource(url, config, app_spec, project), as_json)


@tasks_app.command("requeue")
def tasks_requeue(
    task_id: Annotated[str, typer.Argument(help="The task's id.")],
    url: UrlOption = None,
    config: ConfigOption = None,
    app_spec: AppOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Put a dead, cancelled or expired task back to pending; exit 1 if it was none of those."""
    _task_action("requeue", task_id, AppSource(url, config, app_spec, project), as_json)


# -- schedules ------------------------------------------------------------------------------------
@schedules_app.command("list")
def schedules_list(
    url: UrlOption = None,
    config: ConfigOption = None,
    app_spec: AppOption = None,
    project: ProjectOption = None,
    state: Annotated[
        str | None, typer.Option("--state", help="Only active, paused or finished ones.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Schedules, active ones first by next run."""
    if state is not None and state not in ("active", "paused", "finished"):
        fail(f"--state {state!r} is not one of active, paused, finished")
    source = AppSource(url=url, config=config, app=app_spec, project=project)
    rows = with_queries(source, lambda q: q.schedules(state))
    if as_json:
        typer.echo(to_json(rows))
        return
    table = Table(
        title=f"Schedules · {len(rows)}", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False
    )
    table.add_column("schedule / function", overflow="ellipsis", ratio=1)
    table.add_column("queue / timing", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("next / last run", justify="right", no_wrap=True)
    table.add_column("runs", justify="right", no_wrap=True)
    for s in rows:
        next_run = when(s["next_run_at"]) if s["state"] == "active" else "·"
        table.add_row(
            id_cell(s["id"], s["func"]),
            Text.assemble(s["queue"], "\n", (s["timing"], "dim")),
            status_text(s["state"]),
            f"{next_run}\n{when(s['last_run_at'])}",
            str(s["run_count"]),
        )
    Console().print(table if rows else Text("no schedules", style="dim"))


def _schedule_action(action: str, schedule_id: str, source: AppSource, as_json: bool) -> None:
    outcome = with_queries(source, lambda q: q.schedule_action(schedule_id, action))
    if as_json:
        key = "task_id" if action == "run" else "done"
        typer.echo(to_json({"schedule_id": schedule_id, "action": action, key: outcome}))
    elif action == "run":
        typer.echo(f"schedule {schedule_id}: enqueued task {outcome}")
    else:
        typer.echo(
            f"schedule {schedule_id}: {action} "
            + ("done" if outcome else "changed nothing (already so)")
        )


def _schedule_command(action: str, doc: str) -> None:
    def command(
        schedule_id: Annotated[str, typer.Argument(help="The schedule's id.")],
        url: UrlOption = None,
        config: ConfigOption = None,
        app_spec: AppOption = None,
        project: ProjectOption = None,
        as_json: JsonOption = False,
    ) -> None:
        _schedule_action(action, schedule_id, AppSource(url, config, app_spec, project), as_json)

    command.__doc__ = doc
    schedules_app.command(action)(command)


_schedule_command("pause", "Pause a schedule: no occurrence is enqueued until it is resumed.")
_schedule_command("resume", "Resume a paused schedule from its next occurrence.")
_schedule_command("run", "Enqueue one occurrence of a schedule now (its timeline is unchanged).")
_schedule_command("delete", "Delete a schedule.")


# -- dead letters ---------------------------------------------------------------------------------
@dlq_app.command("list")
def dlq_list(
    url: UrlOption = None,
    config: ConfigOption = None,
    app_spec: AppOption = None,
    project: ProjectOption = None,
    queue: Annotated[str | None, typer.Option("--queue", "-q", help="Only this queue.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Tasks per page (1-1000).")] = 50,
    page: PageOption = 0,
    after: AfterOption = None,
    as_json: JsonOption = False,
) -> None:
    """Dead tasks, newest first, with the error that killed them."""
    try:
        f = TaskFilter.parse(queue=queue, limit=limit, page=page, after=after)
    except ValueError as exc:
        fail(str(exc))
    source = AppSource(url=url, config=config, app=app_spec, project=project)
    result = with_queries(source, lambda q: q.dead(f.queue, f.limit, f.page, after=f.after))
    if as_json:
        typer.echo(to_json(result.to_json()))
        return
    if not result.rows:
        Console().print(Text("the dead-letter queue is empty", style="green"))
        return
    console = Console()
    console.print(task_table(result.rows, f"Dead letters · {result.total}"))
    if result.note:
        console.print(Text(result.note, style="yellow"))
    more(console, result)


@dlq_app.command("requeue")
def dlq_requeue(
    task_ids: Annotated[list[str] | None, typer.Argument(help="Dead tasks to requeue.")] = None,
    all_dead: Annotated[bool, typer.Option("--all", help="Requeue every dead task.")] = False,
    queue: Annotated[
        str | None, typer.Option("--queue", "-q", help="With --all: only this queue.")
    ] = None,
    url: UrlOption = None,
    config: ConfigOption = None,
    app_spec: AppOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Put dead tasks back to pending with fresh attempts: the ids given, or --all."""
    if bool(task_ids) == all_dead:
        fail("give the ids of dead tasks to requeue, or --all (not both)")
    if queue is not None and not all_dead:
        fail("--queue applies to --all")
    source = AppSource(url=url, config=config, app=app_spec, project=project)

    async def work(q: Queries) -> dict[str, Any]:
        if all_dead:
            return {"requeued": await q.requeue_all_dead(queue)}
        done = {tid: await q.requeue(tid) for tid in task_ids or []}
        return {"requeued": sum(done.values()), "tasks": done}

    outcome = with_queries(source, work)
    if as_json:
        typer.echo(to_json(outcome))
    else:
        typer.echo(f"requeued {outcome['requeued']} task(s)")
        for tid, done in outcome.get("tasks", {}).items():
            if not done:
                typer.echo(f"task {tid} was not dead, cancelled or expired: left as it is")
    if not all_dead and outcome["requeued"] < len(task_ids or []):
        raise typer.Exit(1)


@dlq_app.command("purge")
def dlq_purge(
    queue: Annotated[str | None, typer.Option("--queue", "-q", help="Only this queue.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    url: UrlOption = None,
    config: ConfigOption = None,
    app_spec: AppOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete every dead task (of --queue). Their results stay until their own result TTL."""
    if queue is not None:
        try:
            validate_queue_name(queue)
        except ValueError as exc:
            fail(str(exc))
    where = f"queue {queue!r}" if queue else "every queue"
    if not yes and not typer.confirm(f"Delete every dead task of {where}?"):
        raise typer.Exit(1)
    source = AppSource(url=url, config=config, app=app_spec, project=project)
    deleted = with_queries(source, lambda q: q.purge_dead(queue))
    typer.echo(
        to_json({"queue": queue, "deleted": deleted})
        if as_json
        else f"deleted {deleted} dead task(s) of {where}"
    )


# -- maintenance ----------------------------------------------------------------------------------
@app.command()
def purge(
    queue: Annotated[str, typer.Argument(help="The queue whose waiting tasks to delete.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    url: UrlOption = None,
    config: ConfigOption = None,
    app_spec: AppOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete the tasks waiting in a queue (pending and waiting ones; running and finished tasks
    stay)."""
    try:
        validate_queue_name(queue)
    except ValueError as exc:
        fail(str(exc))
    if not yes and not typer.confirm(f"Delete every waiting task of queue {queue!r}?"):
        raise typer.Exit(1)
    source = AppSource(url=url, config=config, app=app_spec, project=project)
    deleted = with_queries(source, lambda q: q.queue.purge(queue))
    typer.echo(
        to_json({"queue": queue, "deleted": deleted})
        if as_json
        else f"deleted {deleted} waiting task(s) from {queue}"
    )


@app.command()
def cleanup(
    events_older_than: Annotated[
        float | None,
        typer.Option(
            "--events-older-than",
            help="Also delete events older than this many days.",
            show_default=False,
        ),
    ] = None,
    url: UrlOption = None,
    config: ConfigOption = None,
    app_spec: AppOption = None,
    project: ProjectOption = None,
    events: EventsOption = False,
    as_json: JsonOption = False,
) -> None:
    """Run the TTL sweeps now: expire pending tasks past their TTL, drop expired results and
    spent rate-limit and concurrency-key records, and with --events-older-than, old events
    (workers run the first three on their own)."""
    if events_older_than is not None and events_older_than < 0:
        fail(f"--events-older-than must be >= 0 days, got {events_older_than:g}")
    source = AppSource(url=url, config=config, app=app_spec, project=project, events=events)

    async def work(q: Queries) -> dict[str, Any]:
        out: dict[str, Any] = dict(await q.queue.cleanup())
        out["expired_results"] = await q.app.result_store.cleanup()
        out["spent_limit_records"] = await q.queue.sweep_limits()
        if events_older_than is not None:
            store = q.app.event_store
            if store is None:
                out["deleted_events"] = None
            else:
                before = utcnow() - timedelta(days=events_older_than)
                out["deleted_events"] = await store.cleanup_old_events(before)
        return out

    outcome = with_queries(source, work)
    if as_json:
        typer.echo(to_json(outcome))
        return
    for key, value in outcome.items():
        label = key.replace("_", " ")
        typer.echo(f"{label}: {'no event store' if value is None else value}")


__all__ = ["cleanup", "dlq_app", "purge", "schedules_app", "tasks_app"]
