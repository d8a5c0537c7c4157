"""The overview page: queues, throughput and failure-rate charts, workers with heartbeats, and the
rate-limit buckets and concurrency keys in use."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from htpy import a, div, h2, section, span, td, tr

from omniq.dashboard.metrics import Point
from omniq.dashboard.ui import STATUS_ORDER, Ctx, Node, card, chart, duration, grid, pill
from omniq.models.limits import LimitUsage

#: A worker whose last report is older than this is shown as late (it reports every few seconds).
LATE_AFTER = 15.0


def overview(
    ctx: Ctx,
    queues: dict[str, dict[str, Any]],
    workers: list[dict[str, Any]] | None,
    points: Sequence[Point],
    limits: LimitUsage | None = None,
) -> list[Node]:
    return [
        summary_cards(queues, workers, points),
        queue_table(ctx, queues),
        div("#charts.charts")[
            chart(
                points,
                value="throughput",
                label="Throughput",
                unit=" tasks/s",
                element_id="chart-throughput",
                tone="blue",
            ),
            chart(
                points,
                value="failure_rate",
                label="Failure rate",
                unit=" dead / finished",
                element_id="chart-failures",
                percent=True,
                tone="red",
            ),
        ],
        worker_table(workers),
        limit_table(limits),
    ]


def limit_table(limits: LimitUsage | None) -> Node:
    """Each rate-limit bucket (tokens left, when the next comes) and concurrency key (running of
    its limit), as every worker of the project sees them."""
    if limits is None:
        body: Node = div(".empty")["This backend keeps no rate or concurrency limits."]
    else:
        rows = [
            tr[
                td(".mono")[b.key],
                td[b.rate],
                td[
                    span(".tag.warn")[f"empty, next in {b.next_token_in:.2f}s"]
                    if b.next_token_in
                    else span(".tag.ok")[f"{b.tokens:g} tokens"]
                ],
            ]
            for b in limits.buckets
        ] + [
            tr[
                td(".mono")[s.key],
                td[f"{s.limit} at once"],
                td[
                    span(".tag.warn" if s.running >= s.limit else ".tag.ok")[f"{s.running} running"]
                ],
            ]
            for s in limits.slots
        ]
        body = grid(["Key", "Limit", "Now"], rows, empty="No rate limit or concurrency key in use.")
    return section("#limits.panel")[h2["Limits"], body]


def summary_cards(
    queues: dict[str, dict[str, Any]],
    workers: list[dict[str, Any]] | None,
    points: Sequence[Point],
) -> Node:
    def total(status: str) -> int:
        return sum(q["counts"].get(status, 0) for q in queues.values())

    waiting = sum(q["size"] for q in queues.values())
    rate = points[-1].throughput if points else None
    return div("#summary.cards")[
        card("Waiting", f"{waiting:,}", hint=f"in {len(queues)} queue(s)"),
        card("Running", f"{total('running'):,}", tone=".c-running"),
        card("Succeeded", f"{total('success'):,}", tone=".c-success"),
        card(
            "Dead",
            f"{total('dead'):,}",
            tone=".c-dead" if total("dead") else "",
            hint="dead letters to inspect" if total("dead") else "none",
        ),
        card(
            "Workers",
            "—" if workers is None else str(len(workers)),
            hint="no registry on this backend" if workers is None else _workers_hint(workers),
            tone=".c-dead" if workers and any(_stores_away(w) for w in workers) else "",
        ),
        card(
            "Throughput", "—" if rate is None else f"{rate:.1f}/s", hint="successes, last interval"
        ),
    ]


def _stores_away(w: dict[str, Any]) -> list[str]:
    return [role for role, state in (w.get("breakers") or {}).items() if state != "closed"]


def _workers_hint(workers: list[dict[str, Any]]) -> str:
    hint = f"{sum(w['running'] for w in workers)} task(s) running"
    cut_off = sum(1 for w in workers if _stores_away(w))
    return hint + (f"; {cut_off} cannot reach a store" if cut_off else "")


def queue_table(ctx: Ctx, queues: dict[str, dict[str, Any]]) -> Node:
    rows = []
    for name, q in queues.items():
        counts = q["counts"]
        total = q["total"] or 1
        # lists, not generators: htpy renders lazily, after this loop has moved on
        bar = div(".bar")[
            [
                span(
                    f".seg.s-{s}",
                    style=f"width:{counts[s] / total * 100:.2f}%",
                    title=f"{s}: {counts[s]:,}",
                )
                for s in STATUS_ORDER
                if counts.get(s)
            ]
        ]
        rows.append(
            tr[
                td[a(".strong", href=f"{ctx.base}/tasks?queue={name}")[name]],
                td(".num")[f"{q['size']:,}"],
                td[
                    div(".counts")[
                        [
                            a(href=f"{ctx.base}/tasks?queue={name}&status={s}")[
                                pill(s), span(".count")[f"{counts[s]:,}"]
                            ]
                            for s in STATUS_ORDER
                            if counts.get(s)
                        ]
                    ]
                ],
                td(".bar-cell")[bar],
                td(".num.strong")[f"{q['total']:,}"],
            ]
        )
    return section("#queues.panel")[
        h2["Queues"],
        grid(
            ["Queue", "Waiting", "By status", "", "Total"],
            rows,
            empty="No queues yet: nothing was ever enqueued here.",
        ),
    ]


def breaker_tags(w: dict[str, Any]) -> list[Node]:
    """The stores a worker cannot reach (its circuit breakers that are not closed) and the
    finished tasks it keeps until they are back; nothing when all is well."""
    tags: list[Node] = [
        span(".tag.bad", title=f"circuit breaker of its {role} store: {state}")[
            f"{role} {state.replace('_', '-')}"
        ]
        for role, state in (w.get("breakers") or {}).items()
        if state != "closed"
    ]
    if w.get("buffered"):
        tags.append(span(".tag.warn")[f"{w['buffered']:,} results buffered"])
    return tags


def worker_table(workers: list[dict[str, Any]] | None) -> Node:
    if workers is None:
        body: Node = div(".empty")["This backend keeps no worker registry."]
    else:
        rows = []
        for w in workers:
            late = w["seen_ago"] > LATE_AFTER
            outcomes = [
                span(f".tag.{tone}")[f"{w[key]:,} {name}"]
                for key, name, tone in (
                    ("succeeded", "ok", "ok"),
                    ("failed", "failed", "warn"),
                    ("retried", "retried", "warn"),
                    ("dead", "dead", "bad"),
                )
                if w.get(key)
            ]
            rows.append(
                tr[
                    td[
                        div(".strong.mono")[w["worker_id"]],
                        div(".muted")[f"{w['hostname']} · pid {w['pid']}"],
                    ],
                    td[w["worker_type"]],
                    td[", ".join(w["queues"])],
                    td[span(f".pill.w-{w['state']}")[w["state"]], breaker_tags(w)],
                    td[
                        div(".meter")[
                            span(
                                style=f"width:{min(1, w['running'] / max(1, w['concurrency'])) * 100:.0f}%"
                            )
                        ],
                        span(".muted")[f"{w['running']}/{w['concurrency']} busy"],
                    ],
                    td[span(".strong")[f"{w['processed']:,}"], " ", outcomes],
                    td[duration(w["uptime"])],
                    td[
                        span(".hb", class_={"late": late})[span(".dot")],
                        f"{duration(w['seen_ago'])} ago",
                    ],
                ]
            )
        body = grid(
            ["Worker", "Type", "Queues", "State", "Load", "Processed", "Up", "Heartbeat"],
            rows,
            empty="No live workers: none has reported within its time to live.",
        )
    return section("#workers.panel")[h2["Workers"], body]


__all__ = [
    "LATE_AFTER",
    "breaker_tags",
    "limit_table",
    "overview",
    "queue_table",
    "summary_cards",
    "worker_table",
]
