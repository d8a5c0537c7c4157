"""``omniq info``: the queues of a backend, their sizes and counts by status, the workers serving
it, and its health.

The same data serves the table and ``--json``, so a script sees exactly what a person sees.
Workers are those whose record in the backend's registry is still renewed (every worker publishes
one in its upkeep loop and removes it when it stops); a worker killed outright drops out when its
record expires.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from omniq._redact import redact_text
from omniq._time import utcnow
from omniq.cli.source import BackendProblem, Selected
from omniq.dashboard.queries import progress_data
from omniq.exceptions import OmniQError, QueueNameError
from omniq.models.task import TaskStatus
from omniq.models.worker import WorkerInfo
from omniq.queue.builder import validate_queue_name
from omniq.storage.base import Capability

#: Status columns of the queue table, in lifecycle order (those with no task are left out).
STATUS_COLUMNS = tuple(TaskStatus)


async def collect(selected: Selected) -> dict[str, Any]:
    """Health first: an unreachable backend is reported as such rather than failing on the first
    query. The application is closed on return."""
    app = selected.app
    try:
        health = _redacted(await app.health_check())
        queues: dict[str, dict[str, Any]] = {}
        corrupt: list[str] = []
        workers: list[dict[str, Any]] | None = []
        running: list[dict[str, Any]] = []
        limits: dict[str, Any] | None = None
        if health["status"] == "healthy":
            stats = await app.task_queue.stats()
            names = list(app.task_queue.queues or [])
            names += [name for name in sorted(stats) if name not in names]
            for name in names:
                counts = {status: n for status, n in stats.get(name, {}).items() if n}
                corrupt += corrupt_counts(name, counts)
                if not _is_queue_name(name):
                    continue  # not a queue: its records are reported as corrupt only
                queues[name] = {
                    "size": await app.task_queue.get_queue_size(name),
                    "total": sum(counts.values()),
                    "counts": counts,
                }
            running = await running_tasks(app, queues)
            if app.task_queue.supports(Capability.WORKERS):
                workers = [worker_row(w) for w in await app.task_queue.list_workers()]
            else:
                workers = None
            if app.task_queue.supports(Capability.LIMITS):
                limits = await _limits(app.task_queue)
    except (OmniQError, OSError) as exc:
        raise BackendProblem(
            f"cannot read the backend {selected.where}: {type(exc).__name__}: {redact_text(str(exc))}"
        ) from exc
    finally:
        await app.close()
    return {
        "backend": selected.where,
        "project": app.project_name,
        "status": health["status"],
        "queues": queues,
        "workers": workers,
        "running": running,
        "unserved": unserved_queues(queues, workers),
        "limits": limits,
        "corrupt": corrupt,
        "health": health,
        # this command's own connections; each worker's are in its row (``breakers``)
        "breakers": _redacted(app.breaker_state()),
    }


async def _limits(queue: Any) -> dict[str, Any]:
    """The limits panel's data; a store that cannot answer (a schema from another version)
    says why there instead of failing the whole report."""
    try:
        return dict(msgspec.to_builtins(await queue.limit_usage()))
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {redact_text(str(exc))}"}


_STATUSES = frozenset(s.value for s in TaskStatus)


#: the running tasks ``omniq info`` lists, newest first, with their progress
RUNNING_ROWS = 20


async def running_tasks(app: Any, queues: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest running tasks and their last progress report (read only when the counts
    say some task runs: one listing call)."""
    if not any(q["counts"].get(TaskStatus.RUNNING.value) for q in queues.values()):
        return []
    tasks = await app.task_queue.list_tasks(
        status=TaskStatus.RUNNING, limit=RUNNING_ROWS, descending=True
    )
    return [
        {
            "id": t.id,
            "func": t.func,
            "queue": t.queue_name,
            "worker_id": t.worker_id,
            "progress": progress_data(t.progress),
        }
        for t in tasks
    ]


def _is_queue_name(name: str) -> bool:
    try:
        validate_queue_name(name)
    except QueueNameError:
        return False
    return True


def corrupt_counts(queue: str, counts: dict[str, int]) -> list[str]:
    """What the counts of ``queue`` say about records that are not tasks (written by something
    else, or damaged): a queue name that is no queue name, a status that is no status. Each
    such record is listed by ``list_tasks`` as DEAD with the reason; everything else reads on."""
    if not _is_queue_name(queue):
        total = sum(counts.values())
        return [f"{total} task record(s) with the queue name {queue!r}, which is no queue name"]
    return [
        f"{n} task record(s) of queue {queue!r} with the status {status!r}, which is no status"
        for status, n in sorted(counts.items())
        if status not in _STATUSES
    ]


def unserved_queues(
    queues: dict[str, dict[str, Any]], workers: list[dict[str, Any]] | None
) -> list[str] | None:
    """Queues with tasks ready to run that no live worker serves: those tasks wait silently
    until one starts. None when the backend keeps no worker registry (nothing to tell)."""
    if workers is None:
        return None
    served = {q for w in workers for q in w["queues"]}
    return [name for name, queue in queues.items() if queue["size"] and name not in served]


#: the status of a store whose database file does not exist yet: nothing ever ran there
NOT_CREATED = "not created"


def not_created(selected: Selected, path: Path) -> dict[str, Any]:
    """What ``collect`` would find in a database that does not exist, without connecting (which
    would create it): no queue, no worker."""
    return {
        "backend": selected.where,
        "project": selected.app.project_name,
        "status": NOT_CREATED,
        "queues": {},
        "workers": [],
        "corrupt": [],
        "health": {"database": {"status": NOT_CREATED, "path": str(path)}},
    }


def worker_row(info: WorkerInfo) -> dict[str, Any]:
    """A worker's record as ``--json`` prints it: every field, times in ISO 8601 (UTC), and its
    uptime in seconds (from its start to its last report)."""
    row: dict[str, Any] = msgspec.to_builtins(info)
    row["uptime"] = round(info.uptime, 3)
    return row


def to_json(data: dict[str, Any]) -> str:
    encoded = msgspec.json.encode(data, enc_hook=str)
    return msgspec.json.format(encoded, indent=2).decode()


def render(data: dict[str, Any]) -> Group:
    healthy = data["status"] == "healthy"
    empty = data["status"] == NOT_CREATED
    title = Text.assemble(
        ("OmniQ ", "bold"),
        (data["backend"], "cyan"),
        f" · project {data['project']} · ",
        (data["status"], "green" if healthy else "yellow" if empty else "bold red"),
    )
    parts: list[Any] = [title]
    if healthy or empty:
        parts.append(_queue_table(data["queues"]))
        for name in data.get("unserved") or ():
            waiting = data["queues"][name]["size"]
            parts.append(
                Text(
                    f"no live worker serves queue {name!r} ({waiting} waiting): start one with "
                    f"`omniq worker --queues {name}`",
                    style="bold yellow",
                )
            )
        for line in data.get("corrupt") or ():
            parts.append(Text(f"corrupt: {line}", style="bold yellow"))
        if data.get("corrupt"):
            parts.append(
                Text("`omniq tasks list` shows each one as DEAD with the reason", style="yellow")
            )
        parts.append(_worker_table(data.get("workers")))
        if data.get("running"):
            parts.append(_running_table(data["running"]))
        limits = _limits_table(data.get("limits"))
        if limits is not None:
            parts.append(limits)
    parts.append(_health_table(data["health"]))
    return Group(*parts)


def _queue_table(queues: dict[str, dict[str, Any]]) -> Table | Text:
    if not queues:
        return Text("no queues yet: nothing was ever enqueued here", style="dim")
    # only the statuses some queue has, so the table fits a terminal
    shown = [s for s in STATUS_COLUMNS if any(q["counts"].get(s.value) for q in queues.values())]
    table = Table(title="Queues", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("queue", style="bold", no_wrap=True)
    table.add_column("size", justify="right", style="cyan", no_wrap=True)
    for status in shown:
        table.add_column(status.value, justify="right", no_wrap=True)
    table.add_column("total", justify="right", style="bold", no_wrap=True)
    for name, queue in queues.items():
        counts = queue["counts"]
        table.add_row(
            name,
            str(queue["size"]),
            *(_count(counts.get(status.value, 0)) for status in shown),
            str(queue["total"]),
        )
    return table


def _worker_table(workers: list[dict[str, Any]] | None) -> Table | Text:
    """One row per worker, readable in an 80-column terminal: cells of two lines (where it runs
    under its id, running tasks under its state, last report under its uptime) and the outcome
    counts in one cell, only those that happened."""
    if workers is None:
        return Text("this backend keeps no worker registry", style="dim")
    if not workers:
        return Text("no live workers: none has reported within its time to live", style="dim")
    now = utcnow()
    table = Table(title="Workers", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("worker", style="bold", no_wrap=True)
    table.add_column("type", no_wrap=True)
    table.add_column("queues", overflow="fold")
    table.add_column("state", no_wrap=True)
    table.add_column("processed", overflow="fold")
    table.add_column("up / seen", justify="right", no_wrap=True)
    for w in workers:
        last_seen = datetime.fromisoformat(w["last_seen"])
        table.add_row(
            Text.assemble(w["worker_id"], "\n", (f"{w['hostname']}/{w['pid']}", "dim")),
            w["worker_type"],
            ", ".join(w["queues"]),
            Text.assemble(
                (w["state"], "green" if w["state"] == "running" else "yellow"),
                f"\n{w['running']}/{w['concurrency']} busy",
                *_away(w),
            ),
            _outcomes(w),
            f"{_duration(w['uptime'])}\n{_duration((now - last_seen).total_seconds())} ago",
        )
    return table


def _away(w: dict[str, Any]) -> list[tuple[str, str]]:
    """``results store away (breaker open), 12 buffered``: the stores a worker cannot reach,
    from its circuit breakers, and the finished tasks it keeps until they are back."""
    away = [
        f"{role} {state.replace('_', '-')}"
        for role, state in (w.get("breakers") or {}).items()
        if state != "closed"
    ]
    parts: list[tuple[str, str]] = []
    if away:
        parts.append(("\nbreaker " + ", ".join(away), "bold red"))
    if w.get("buffered"):
        parts.append((f"\n{w['buffered']} results buffered", "yellow"))
    return parts


def _running_table(rows: list[dict[str, Any]]) -> Table:
    """The newest running tasks: what runs where, and how far it got."""
    table = Table(
        title="Running (newest first)", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False
    )
    table.add_column("task / function", overflow="ellipsis", ratio=1)
    table.add_column("queue", no_wrap=True)
    table.add_column("progress", overflow="fold")
    for r in rows:
        p = r["progress"]
        table.add_row(
            Text.assemble((r["id"], "cyan"), "\n", (r["func"], "dim")),
            r["queue"],
            Text.assemble((f"{p['percent']:g}%", "bold"), f"  {p['note'] or ''}")
            if p
            else Text("·", style="dim"),
        )
    return table


def _limits_table(limits: dict[str, Any] | None) -> Table | Text | None:
    """Rate-limit buckets (tokens left now, when the next comes) and concurrency keys (running
    of the limit), as every worker sees them; nothing when no task ever used a limit."""
    if limits and "error" in limits:
        return Text(f"limits: cannot read them: {limits['error']}", style="yellow")
    if not limits or not (limits["buckets"] or limits["slots"]):
        return None
    table = Table(title="Limits", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("key", style="bold", overflow="fold")
    table.add_column("limit", justify="right", no_wrap=True)
    table.add_column("now", no_wrap=True)
    for b in limits["buckets"]:
        wait = b["next_token_in"]
        now = f"{b['tokens']:g} tokens" if not wait else f"empty, next in {wait:.2f}s"
        table.add_row(b["key"], b["rate"], Text(now, style="yellow" if wait else "green"))
    for s in limits["slots"]:
        full = s["running"] >= s["limit"]
        table.add_row(
            s["key"],
            f"{s['limit']} at once",
            Text(f"{s['running']} running", style="yellow" if full else "green"),
        )
    return table


def _outcomes(w: dict[str, Any]) -> Text:
    """``12`` then ``9 ok, 3 failed, 2 retried, 1 dead``: the total, then what happened."""
    text = Text(str(w["processed"]), style="bold")
    parts = [
        (f"{w[key]} {label}", style)
        for key, label, style in (
            ("succeeded", "ok", "green"),
            ("failed", "failed", "red"),
            ("retried", "retried", "yellow"),
            ("dead", "dead", "bold red"),
        )
        if w.get(key)
    ]
    for n, (part, style) in enumerate(parts):
        text.append("\n" if n == 0 else ", ")
        text.append(part, style=style)
    return text


def _duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``, ``3d04h``: short enough for a table column."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _health_table(health: dict[str, Any]) -> Table:
    table = Table(title="Health", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("component", style="bold")
    table.add_column("backend")
    table.add_column("status")
    table.add_column("details", overflow="fold")
    for name, check in health.items():
        if not isinstance(check, dict):
            continue
        details = {k: v for k, v in check.items() if k not in ("status", "backend", "connected")}
        ok = check.get("status") == "healthy"
        table.add_row(
            name,
            str(check.get("backend", "")),
            Text(str(check.get("status")), style="green" if ok else "bold red"),
            ", ".join(f"{k}={v}" for k, v in details.items()),
        )
    return table


def _count(n: int) -> str:
    return str(n) if n else "·"


def _redacted(value: Any) -> Any:
    """Health details may quote a driver's error, which may quote a URL with its password."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    return value


def print_info(data: dict[str, Any], console: Console) -> None:
    console.print(render(data))


__all__ = [
    "NOT_CREATED",
    "STATUS_COLUMNS",
    "collect",
    "corrupt_counts",
    "not_created",
    "print_info",
    "render",
    "to_json",
    "unserved_queues",
    "worker_row",
]
