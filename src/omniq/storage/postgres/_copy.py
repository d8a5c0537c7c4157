"""Large enqueues by binary COPY straight into the tasks table (issue 20, item 2).

A batch whose ids are distinct and none of whose tasks has dependencies needs nothing that
only SQL can do: no ``depends_on`` text to unpack, no ``waited_on`` flag to set on rows that
exist, no id to skip. Its rows go into ``tasks`` by one ``COPY ... FROM STDIN (FORMAT binary)``,
the cheapest way into a table that PostgreSQL has (no plan, no per-row expression, no staging
copy to read back), then one ``pg_notify`` per queue that got pending tasks, in the same
transaction: all-or-nothing, and the claimers wake only when the rows are visible (a NOTIFY is
delivered at commit). COPY fires the statement-level triggers, transition tables included, so
the kept counts of migration 0004 stay exact.

Whether an id exists is learnt from the primary key: COPY cannot skip a row, so a batch that
meets one (a retried batch, or a concurrent one holding the same ids) fails whole -- nothing is
kept -- and the caller stores it again by the staging path, which skips the ids that exist. The
ids a batch is given are almost always fresh (generated), so that second try is rare.
"""

from __future__ import annotations

from typing import Any

import asyncpg  # type: ignore[import-untyped]

from omniq.models.task import TaskStatus

#: A task's own columns, in the order of ``_enqueue._columns`` (the staging table adds ``deps``).
TASK_COLUMNS = (
    "id",
    "queue",
    "func",
    "priority",
    "status",
    "created_at",
    "eta",
    "expires_at",
    "result_ttl",
    "max_attempts",
    "schedule_id",
    "payload",
)
#: The columns COPY fills, in the order of the records (the others take their defaults:
#: ``seq`` and ``ready_at`` are generated, ``depends_on`` NULL, ``waited_on`` false).
COLUMNS = ("project", *TASK_COLUMNS)

#: One NOTIFY per queue named, in one statement.
_NOTIFY = "SELECT count(pg_notify($1, q)) FROM unnest($2::text[]) AS q"

#: What a COPY that met an existing id (or a concurrent batch holding one) raises.
CONFLICTS = (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError)


async def copy_tasks(pool: Any, records: list[tuple[Any, ...]], channel: str) -> set[str]:
    """COPYs the records of a batch with distinct ids and no dependencies (``project`` then
    the task's columns, in the order of :data:`COLUMNS`) into ``tasks`` and wakes their
    queues, in one transaction; returns the ids stored (all of them). Raises one of
    :data:`CONFLICTS`, having stored nothing, when an id exists."""
    pending = TaskStatus.PENDING.value
    woken = sorted({r[2] for r in records if r[5] == pending})
    async with pool.acquire() as conn, conn.transaction():
        await conn.copy_records_to_table("tasks", records=records, columns=COLUMNS)
        if woken:
            await conn.fetchval(_NOTIFY, channel, woken)
    return {r[1] for r in records}
