"""Tasks, task detail, schedules, dead letters and events: htpy fragments with stable ids.

A page is rendered whole on the first request; afterwards its stream sends again only the
fragments whose HTML changed (Datastar morphs them in by id), so what the user is typing in a
filter is never touched: the filter bars are outside the live fragments.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from htpy import (
    a,
    button,
    code,
    datalist,
    details,
    div,
    h2,
    input,
    label,
    li,
    option,
    pre,
    progress,
    section,
    select,
    span,
    summary,
    td,
    time,
    tr,
    ul,
)

from omniq._time import utcnow
from omniq.dashboard.queries import TaskPage, short
from omniq.dashboard.ui import (
    DEBOUNCED,
    STATUS_ORDER,
    Ctx,
    Node,
    action_button,
    ago,
    func_label,
    grid,
    js_string,
    pill,
    progress_bar,
)
from omniq.models.event import EventType


# -- tasks ------------------------------------------------------------------------------------
def task_filters(
    ctx: Ctx,
    queue_names: Sequence[str],
    *,
    with_status: bool = True,
    with_search: bool = True,
    functions: Sequence[str] = (),
) -> Node:
    """The filters of a task list; ``functions``: the stored functions' names, offered as the
    function field's suggestions (empty where the store cannot list them cheaply)."""
    refresh = ctx.refresh
    reset_page = f"$page = 0; $after = ''; $before = ''; {refresh}"
    return div(".filters")[
        label[
            "Queue",
            select(data_bind_queue=True, data_on_change=reset_page)[
                option(value="")["all queues"], (option(value=q)[q] for q in queue_names)
            ],
        ],
        label[
            "Status",
            select(data_bind_status=True, data_on_change=reset_page)[
                option(value="")["any status"], (option(value=s)[s] for s in STATUS_ORDER)
            ],
        ]
        if with_status
        else None,
        label[
            "Function",
            input(
                {DEBOUNCED: reset_page},
                type="search",
                placeholder="name contains…",
                list="func-names",
                data_bind_func=True,
            ),
            datalist("#func-names")[(option(value=name) for name in functions)],
        ]
        if with_search
        else None,
        label[
            "Task id",
            input(
                {DEBOUNCED: reset_page},
                type="search",
                placeholder="exact id…",
                data_bind_search=True,
            ),
        ]
        if with_search
        else None,
    ]


def queue_filter(ctx: Ctx, queue_names: Sequence[str]) -> Node:
    return task_filters(ctx, queue_names, with_status=False, with_search=False)


def page_buttons(ctx: Ctx, page: TaskPage) -> list[Node]:
    """Newer/older buttons of a paged list: they set the cursor signals (the first or last task
    shown) and re-render in place, so a page stays live while it is read and a deep page costs
    what the first does."""
    newer = (
        f"$after = ''; $before = {js_string(page.before or '')}; $page = {max(0, page.page - 1)}"
    )
    older = f"$before = ''; $after = {js_string(page.after or '')}; $page = {page.page + 1}"
    return [
        button(
            ".btn.ghost",
            type="button",
            disabled=not page.has_newer,
            data_on_click=f"{newer}; {ctx.refresh}",
        )["← Newer"],
        button(
            ".btn.ghost",
            type="button",
            disabled=not page.after,
            data_on_click=f"{older}; {ctx.refresh}",
        )["Older →"],
    ]


def task_table(ctx: Ctx, page: TaskPage, *, element_id: str = "tasks") -> Node:
    now = utcnow()
    rows = []
    for r in page.rows:
        problem = r["error_type"] or ""
        if r["error_message"]:
            problem = f"{problem}: {r['error_message']}" if problem else r["error_message"]
        rows.append(
            tr(data_task_id=r["id"], data_status=r["status"])[
                td[ctx.task_link(r["id"])],
                td(".func")[func_label(r["func"])],
                td[r["queue"]],
                td[pill(r["status"]), progress_bar(r.get("progress"))],
                td(".num")[f"{r['attempts']}/{r['max_attempts']}"],
                td(".mono.args", title=r["args"])[r["args"]],
                td[ago(r["created_at"], now)],
                td[
                    ago(r["finished_at"], now)
                    if r["finished_at"]
                    else (span(".muted")["eta ", ago(r["eta"], now)] if r["eta"] else None)
                ],
                td(".error", title=problem)[short(problem, 80) if problem else None],
                td(".actions")[ctx.task_actions(r)],
            ]
        )
    shown = len(page.rows)
    first = page.page * page.limit + 1 if shown else 0
    of = f" of {page.total:,}" if page.total is not None else ""
    pager = div(".pager")[
        span(".muted")[f"{first:,} to {first + shown - 1 if shown else 0:,}{of}"],
        *page_buttons(ctx, page),
    ]
    return section(f"#{element_id}.panel")[
        div(".note")[page.note] if page.note else None,
        grid(
            [
                "Task",
                "Function",
                "Queue",
                "Status",
                "Tries",
                "Arguments",
                "Created",
                "Finished",
                "Error",
                "",
            ],
            rows,
            empty="No task matches these filters.",
        ),
        pager,
    ]


def kv(items: Sequence[tuple[str, Node]]) -> Node:
    return div(".kv")[((div(".k")[k], div(".v")[v]) for k, v in items)]


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=repr)


def task_detail(ctx: Ctx, t: dict[str, Any], has_events: bool) -> Node:
    now = utcnow()
    result = t["result"]
    ttl_items: list[tuple[str, Node]] = [
        ("task expires", ago(t["expires_at"], now) if t["expires_at"] else "never"),
        (
            "result kept",
            ago(result["expires_at"], now)
            if result and result["expires_at"]
            else (
                "until deleted"
                if result
                else (
                    f"{t['result_ttl']:g}s after finishing" if t["result_ttl"] is not None else "—"
                )
            ),
        ),
    ]
    error = None
    if t["error_type"] or t["error_message"] or t["error_traceback"]:
        error = section(".panel.error-panel")[
            h2["Error"],
            div(".error-line")[
                span(".strong")[t["error_type"] or "Error"], ": ", t["error_message"] or ""
            ],
            pre(".code.traceback")[t["error_traceback"]] if t["error_traceback"] else None,
        ]
    if has_events:
        events = t["events"] or []
        timeline: Node = (
            ul(".timeline")[
                (
                    li[
                        pill(e["event_type"]),
                        span(".muted")[ago(e["timestamp"], now)],
                        span(".mono")[f" attempt {e['attempt']}"] if e["attempt"] else None,
                        span(".mono.muted")[f" {e['worker_id']}"] if e["worker_id"] else None,
                        code(".details")[short(e["details"], 160)] if e["details"] else None,
                    ]
                    for e in events
                )
            ]
            if events
            else div(".empty")["No event recorded for this task."]
        )
    else:
        timeline = div(".empty")["Events are not recorded: this app has no event store."]
    return div("#task")[
        section(".panel.task-head")[
            div(".title-row")[
                pill(t["status"]),
                code(".mono.big")[t["id"]],
                div(".actions")[ctx.task_actions(t)],
            ],
            kv(
                [
                    ("function", code[t["func"]]),
                    ("queue", a(href=f"{ctx.base}/tasks?queue={t['queue']}")[t["queue"]]),
                    ("attempts", f"{t['attempts']} of {t['max_attempts']}"),
                    ("priority", str(t["priority"])),
                    ("worker", t["worker_id"] or "—"),
                    ("created", ago(t["created_at"], now)),
                    ("eta", ago(t["eta"], now) if t["eta"] else "—"),
                    ("started", ago(t["started_at"], now) if t["started_at"] else "—"),
                    ("finished", ago(t["finished_at"], now) if t["finished_at"] else "—"),
                    (
                        "lease until",
                        ago(t["lease_expires_at"], now) if t["lease_expires_at"] else "—",
                    ),
                    ("timeout", f"{t['timeout']:g}s" if t["timeout"] else "none"),
                    ("schedule", t["schedule_id"] or "—"),
                    ("depends on", ", ".join(t["depends_on"]) or "—"),
                    *ttl_items,
                ]
            ),
        ],
        progress_panel(t.get("progress"), now),
        div(".two")[
            section(".panel")[
                h2["Arguments"],
                pre(".code")[as_json({"args": t["args"], "kwargs": t["kwargs"]})],
            ],
            section(".panel")[
                h2["Result"],
                pre(".code")[as_json(result["result"])]
                if result and result["status"] == "success"
                else div(".empty")[result_note(result)],
                kv(
                    [
                        ("duration", f"{result['duration']:.3f}s" if result["duration"] else "—"),
                        ("finished", ago(result["finished_at"], now)),
                    ]
                )
                if result
                else None,
            ],
        ],
        error,
        section(".panel")[h2["Events"], timeline],
        details(".panel.raw")[summary["Metadata"], pre(".code")[as_json(t["metadata"])]]
        if t["metadata"]
        else None,
    ]


def progress_panel(p: dict[str, Any] | None, now: datetime) -> Node:
    """What the task last reported: the bar, the note, when and by which attempt, and its
    partial data."""
    if p is None:
        return None
    return section("#task-progress.panel.progress-panel")[
        h2["Progress"],
        div(".title-row")[
            span(".strong")[f"{p['percent']:g}%"], span[p["note"]] if p["note"] else None
        ],
        progress(value=str(p["fraction"]), max="1"),
        kv(
            [
                ("reported", ago(p["updated_at"], now) if p["updated_at"] else "—"),
                ("by attempt", str(p["attempt"])),
            ]
        ),
        pre(".code")[as_json(p["data"])] if p.get("data") is not None else None,
    ]


def result_note(result: dict[str, Any] | None) -> str:
    """What the result panel says when there is no value to show."""
    if result is None:
        return "No result yet."
    if result["status"] == "error":
        return "No value: the task failed (its error is below)."
    return f"No value: the task ended {result['status']}."


# -- schedules --------------------------------------------------------------------------------
def schedule_table(ctx: Ctx, schedules: list[dict[str, Any]]) -> Node:
    now = utcnow()
    rows = []
    for s in schedules:
        path = f"{ctx.base}/ui/schedules/{quote(s['id'])}"
        acts: list[Node] = []
        if s["state"] == "active":
            acts.append(action_button("Pause", f"{path}/pause", ctx.csrf, tone=".ghost"))
        elif s["state"] == "paused":
            acts.append(action_button("Resume", f"{path}/resume", ctx.csrf))
        acts.append(action_button("Run now", f"{path}/run", ctx.csrf, tone=".ghost"))
        acts.append(
            action_button(
                "Delete",
                f"{path}/delete",
                ctx.csrf,
                tone=".danger",
                confirm=f"Delete schedule {s['id']}?",
            )
        )
        rows.append(
            tr(data_schedule_id=s["id"], data_state=s["state"])[
                td(".mono", title=s["id"])[short(s["id"], 26)],
                td(".func")[func_label(s["func"])],
                td[s["queue"]],
                td[s["timing"]],
                td[pill(s["state"])],
                td[ago(s["next_run_at"], now) if s["state"] == "active" else span(".muted")["—"]],
                td[
                    ctx.task_link(s["last_task_id"]) if s["last_task_id"] else None,
                    " ",
                    ago(s["last_run_at"], now) if s["last_run_at"] else None,
                ],
                td(".num")[str(s["run_count"]) + (f"/{s['max_runs']}" if s["max_runs"] else "")],
                td(".actions")[acts],
            ]
        )
    return section("#schedules.panel")[
        grid(
            [
                "Schedule",
                "Function",
                "Queue",
                "Timing",
                "State",
                "Next run",
                "Last run",
                "Runs",
                "",
            ],
            rows,
            empty="No schedules. Add one with oq.schedule(...).",
        )
    ]


# -- dead letters -----------------------------------------------------------------------------
def dead_table(ctx: Ctx, page: TaskPage) -> Node:
    now = utcnow()
    rows = [
        tr(data_task_id=r["id"], data_status=r["status"])[
            td[ctx.task_link(r["id"])],
            td(".func")[func_label(r["func"])],
            td[r["queue"]],
            td(".num")[f"{r['attempts']}/{r['max_attempts']}"],
            td(".error", title=r["error_message"] or "")[
                span(".strong")[r["error_type"] or ""],
                ": " if r["error_type"] and r["error_message"] else "",
                r["error_message"] or "",
            ],
            td(".mono.args", title=r["args"])[r["args"]],
            td[ago(r["finished_at"], now)],
            td(".actions")[
                action_button("Requeue", f"{ctx.base}/ui/tasks/{quote(r['id'])}/requeue", ctx.csrf),
                a(".btn.ghost", href=f"{ctx.base}/tasks/{quote(r['id'])}")["Inspect"],
            ],
        ]
        for r in page.rows
    ]
    total = page.total or 0
    return section("#dead.panel")[
        div(".panel-head")[
            span(".muted")[
                f"{total:,} dead task(s)" if total else "The dead-letter queue is empty."
            ],
            # the two buttons together on the right (three children of the spaced-out head
            # left "Requeue all" floating in the middle)
            div(".head-actions")[
                action_button(
                    "Requeue all",
                    f"{ctx.base}/ui/dead/requeue-all",
                    ctx.csrf,
                    confirm="Requeue every dead task shown by this filter?",
                ),
                action_button(
                    "Delete all",
                    f"{ctx.base}/ui/dead/purge",
                    ctx.csrf,
                    tone=".danger",
                    confirm="Delete every dead task shown by this filter? This cannot be undone.",
                ),
            ]
            if total
            else None,
        ],
        grid(
            ["Task", "Function", "Queue", "Tries", "Error", "Arguments", "Died", ""],
            rows,
            empty="Nothing died. Tasks that run out of attempts land here.",
        ),
        div(".pager")[page_buttons(ctx, page)],
    ]


# -- events -----------------------------------------------------------------------------------
def event_filters(ctx: Ctx, queue_names: Sequence[str]) -> Node:
    return div(".filters")[
        label[
            "Type",
            select(data_bind_etype=True, data_on_change=ctx.refresh)[
                option(value="")["all types"], (option(value=t.value)[t.value] for t in EventType)
            ],
        ],
        label[
            "Queue",
            select(data_bind_queue=True, data_on_change=ctx.refresh)[
                option(value="")["all queues"], (option(value=q)[q] for q in queue_names)
            ],
        ],
        label[
            "Task id",
            input(
                {DEBOUNCED: ctx.refresh},
                type="search",
                placeholder="exact id…",
                data_bind_search=True,
            ),
        ],
    ]


def event_table(ctx: Ctx, events: list[dict[str, Any]] | None) -> Node:
    if events is None:
        return section("#events.panel")[
            div(".empty")[
                "Events are not recorded: this app has no event store (configure event_store, "
                "or pass --events with --url)."
            ]
        ]
    rows = [
        tr(data_event_type=e["event_type"])[
            td(".mono.nowrap")[clock(e["timestamp"])],
            td[pill(e["event_type"])],
            td[ctx.task_link(e["task_id"])],
            td[e["queue"] or ""],
            td(".func")[func_label(e["func"] or "")],
            td(".mono.muted")[e["worker_id"] or ""],
            td(".num")[str(e["attempt"]) if e["attempt"] else ""],
            td(".mono.args")[short(e["details"], 100) if e["details"] else ""],
        ]
        for e in events
    ]
    return section("#events.panel")[
        grid(
            ["When", "Event", "Task", "Queue", "Function", "Worker", "Attempt", "Details"],
            rows,
            empty="No event yet.",
        )
    ]


def clock(value: str) -> Node:
    """An event's time of day to the millisecond (events come in bursts), the date on hover."""
    at = datetime.fromisoformat(value)
    return time(datetime=value, title=at.strftime("%Y-%m-%d %H:%M:%S.%f UTC"))[
        at.strftime("%H:%M:%S.") + f"{at.microsecond // 1000:03d}"
    ]


__all__ = [
    "dead_table",
    "event_filters",
    "event_table",
    "schedule_table",
    "task_detail",
    "task_filters",
    "task_table",
]
