"""The dashboard's building blocks in htpy: the page layout, status pills, tables, times, charts.

htpy escapes every text and attribute value it renders, so whatever a task's arguments, result or
error contain is shown as text. Nothing here marks a value as safe HTML; the one exception is the
SVG of the charts, which is built from numbers only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from htpy import (
    Node as HNode,
)
from htpy import (
    a,
    body,
    button,
    div,
    footer,
    h1,
    head,
    header,
    html,
    link,
    main,
    meta,
    nav,
    progress,
    script,
    span,
    table,
    tbody,
    th,
    thead,
    time,
    title,
    tr,
)
from markupsafe import Markup

from omniq._time import utcnow
from omniq.dashboard.metrics import Point

Node = HNode

#: The pages of the navigation: (path, label, key).
PAGES = (
    ("/", "Overview", "overview"),
    ("/tasks", "Tasks", "tasks"),
    ("/schedules", "Schedules", "schedules"),
    ("/dead", "Dead letters", "dead"),
    ("/events", "Events", "events"),
)

STATUS_ORDER = (
    "pending",
    "waiting",
    "running",
    "success",
    "failed",
    "dead",
    "cancelled",
    "expired",
)


def js_string(value: str) -> str:
    """A value inside a Datastar expression (JavaScript): JSON-quoted, so no quote in it can end
    the string; htpy then escapes the whole attribute for HTML."""
    return json.dumps(value)


def post(path: str, csrf: str) -> str:
    """The expression of an action button: a POST carrying the CSRF token in its header."""
    return f"@post({js_string(path)}, {{headers: {{'X-CSRF-Token': {js_string(csrf)}}}}})"


def layout(
    *,
    page: str,
    heading: str,
    where: str,
    content: Node,
    stream: str,
    signals: dict[str, Any],
    base: str = "",
) -> str:
    """A whole page. ``stream`` is the URL of its live updates, opened once the page loads;
    ``signals`` are the page's client state (filters), sent along with that request."""
    links = [
        a(
            href=base + path,
            class_={"nav-link": True, "active": key == page},
            aria_current="page" if key == page else None,
        )[label]
        for path, label, key in PAGES
    ]
    doc = html(lang="en")[
        head[
            meta(charset="utf-8"),
            meta(name="viewport", content="width=device-width, initial-scale=1"),
            title[f"{heading} · OmniQ"],
            link(rel="stylesheet", href=f"{base}/static/omniq.css"),
            link(rel="icon", href=f"{base}/static/favicon.svg", type="image/svg+xml"),
            script(type="module", src=f"{base}/static/datastar.js"),
        ],
        body({"data-signals": json.dumps(signals)})[
            div(".shell")[
                nav(".sidebar")[
                    a(".brand", href=base + "/")[
                        span(".brand-mark")["Q"],
                        span(".brand-name")["OmniQ"],
                    ],
                    div(".nav-links")[links],
                    div(".sidebar-foot")[
                        div(".where-label")["backend"],
                        div(".where", title=where)[where],
                        a(".api-link", href=f"{base}/schema/swagger")["REST API ↗"],
                    ],
                ],
                main(".content")[
                    header(".page-head")[
                        h1[heading],
                        span("#live.live", title="updates arrive over server-sent events")[
                            span(".dot"), "live"
                        ],
                    ],
                    div("#banner"),
                    content,
                    footer(".foot")["OmniQ dashboard"],
                ],
            ],
            div("#toast"),
            div("#stream", {"data-on-load": f"@get({js_string(stream)})"}),
        ],
    ]
    return str(doc)  # htpy writes the doctype


#: Statuses from which a task can be cancelled, and those from which it can be re-driven.
CANCELLABLE = frozenset({"pending", "waiting", "running"})
REQUEUEABLE = frozenset({"dead", "cancelled", "expired"})
#: Typing in a filter reopens the stream once the user pauses.
DEBOUNCED = "data-on-input__debounce.300ms"


def id_label(task_id: str) -> str:
    """Ids are long and time-ordered (their heads are alike): the tail tells them apart."""
    return task_id if len(task_id) <= 14 else "…" + task_id[-12:]


def func_label(func: str) -> Node:
    """``module:name`` with the name first to the eye; the whole path on hover."""
    if not func:
        return None
    module, sep, name = func.rpartition(":")
    return span(title=func)[span(".mono.strong")[name], span(".mod")[f" {module}"] if sep else None]


class Ctx:
    """What every fragment needs besides its data: the URL prefix and the CSRF token."""

    def __init__(self, base: str, csrf: str, stream: str) -> None:
        self.base = base
        self.csrf = csrf
        self.stream = stream

    @property
    def refresh(self) -> str:
        """Reopens the page's stream with the current signals (the old one is superseded)."""
        return f"@get({js_string(self.stream)})"

    def task_link(self, task_id: str) -> Node:
        return a(".mono.id", href=f"{self.base}/tasks/{quote(task_id)}", title=task_id)[
            id_label(task_id)
        ]

    def task_actions(self, row: dict[str, Any]) -> list[Node]:
        tid = quote(row["id"])  # ids are free text (task_id=...): a path segment each
        out: list[Node] = []
        if row["status"] in CANCELLABLE and not row.get("cancel_requested"):
            out.append(
                action_button(
                    "Cancel", f"{self.base}/ui/tasks/{tid}/cancel", self.csrf, tone=".ghost"
                )
            )
        if row["status"] in REQUEUEABLE:
            out.append(action_button("Requeue", f"{self.base}/ui/tasks/{tid}/requeue", self.csrf))
        return out


def pill(status: str) -> Node:
    return span(f".pill.s-{status}")[status]


def progress_bar(p: dict[str, Any] | None) -> Node:
    """A task's last progress report as a bar and its percentage (the note on hover)."""
    if p is None:
        return None
    label = f"{p['percent']:g}%"
    return span(".progress", title=f"{label} {p['note']}" if p["note"] else label)[
        progress(value=str(p["fraction"]), max="1"), span(".progress-pct")[label]
    ]


def ago(value: str | datetime | None, now: datetime | None = None) -> Node:
    """``12s ago`` / ``in 3m``, with the exact UTC time on hover."""
    if value is None:
        return span(".muted")["—"]
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    seconds = ((now or utcnow()) - at).total_seconds()
    text = f"{duration(abs(seconds))} ago" if seconds >= 0 else f"in {duration(-seconds)}"
    return time(datetime=at.isoformat(), title=at.strftime("%Y-%m-%d %H:%M:%S UTC"))[text]


def duration(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def grid(columns: Sequence[str], rows: Iterable[Node], *, empty: str, cls: str = "") -> Node:
    body_rows = list(rows)
    if not body_rows:
        return div(".empty")[empty]
    return div(".table-wrap")[
        table(f".grid{cls}")[
            thead[tr[(th[c] for c in columns)]],
            tbody[body_rows],
        ]
    ]


def card(label: str, value: Node, *, hint: Node = None, tone: str = "") -> Node:
    return div(f".card{tone}")[
        div(".card-label")[label],
        div(".card-value")[value],
        div(".card-hint")[hint] if hint is not None else None,
    ]


def action_button(label: str, path: str, csrf: str, *, tone: str = "", confirm: str = "") -> Node:
    expr = post(path, csrf)
    if confirm:
        expr = f"confirm({js_string(confirm)}) && {expr}"
    return button(f".btn{tone}", type="button", data_on_click=expr)[label]


def toast(message: str, *, ok: bool = True) -> Node:
    return div("#toast")[div(".toast", class_={"bad": not ok}, role="status")[message]]


def banner(message: str | None) -> Node:
    if not message:
        return div("#banner")
    return div("#banner")[div(".banner")[message]]


def chart(
    points: Sequence[Point],
    *,
    value: str,
    label: str,
    unit: str,
    element_id: str,
    percent: bool = False,
    tone: str = "blue",
) -> Node:
    """An area chart in SVG, drawn on the server from the sampler's points (numbers only)."""
    width, height, pad = 600, 150, 4
    values = [getattr(p, value) for p in points]
    known = [v for v in values if v is not None]
    top = max(known) if known else 0.0
    if percent:  # a rate: room above the highest point, up to 100%
        top = min(1.0, max(0.05, top * 1.25))
    scale_top = top if top > 0 else 1.0
    last = known[-1] if known else None
    shown = "—" if last is None else (f"{last * 100:.1f}%" if percent else f"{last:.1f}")
    if len(values) >= 2:
        step = (width - 2 * pad) / (len(values) - 1)
        coords = [
            (pad + i * step, height - pad - (v or 0.0) / scale_top * (height - 2 * pad))
            for i, v in enumerate(values)
        ]
        line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        area = f"{pad},{height - pad} {line} {coords[-1][0]:.1f},{height - pad}"
        svg = Markup(
            f'<svg viewBox="0 0 {width} {height}" preserveAspectRatio="none" class="chart-svg">'
            f'<line x1="0" y1="{pad}" x2="{width}" y2="{pad}" class="gridline"/>'
            f'<line x1="0" y1="{height / 2:.0f}" x2="{width}" y2="{height / 2:.0f}" '
            f'class="gridline"/>'
            f'<polygon points="{area}" class="area {tone}"/>'
            f'<polyline points="{line}" class="stroke {tone}"/></svg>'
        )
    else:
        svg = Markup(f'<svg viewBox="0 0 {width} {height}" class="chart-svg"></svg>')
    span_seconds = (points[-1].at - points[0].at).total_seconds() if len(points) >= 2 else 0
    peak = f"{top * 100:.0f}%" if percent else f"{top:.1f}"
    return div(f"#{element_id}.chart-card")[
        div(".chart-head")[
            span(".chart-label")[label],
            span(".chart-value")[shown, span(".chart-unit")[unit]],
        ],
        div(".chart-box")[svg],
        div(".chart-foot")[
            span[f"{duration(span_seconds)} ago" if span_seconds else "collecting…"],
            span[f"scale: 0 to {peak}"],
            span["now"],
        ],
    ]


__all__ = [
    "CANCELLABLE",
    "DEBOUNCED",
    "PAGES",
    "REQUEUEABLE",
    "STATUS_ORDER",
    "Ctx",
    "action_button",
    "ago",
    "banner",
    "card",
    "chart",
    "duration",
    "func_label",
    "grid",
    "id_label",
    "js_string",
    "layout",
    "pill",
    "post",
    "toast",
]
