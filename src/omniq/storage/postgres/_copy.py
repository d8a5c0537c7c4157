"""Large enqueues by binary COPY straight into the tasks table (issue 20, item 2).

A batch whose ids are distinct and none of whose tasks has dependencies needs nothing that
only SQL can do: no ``depends_on`` text to unpack, no ``waited_on`` flag to set on rows that
exist, no id to skip. Its rows go into ``tasks`` by one ``COPY ... FROM STDIN (FORMAT binary)``,
the cheapest way into a table that PostgreSQL has (no plan, no per-row expression, no staging
copy to read back), then one statement that adds them to the kept counts (migration 0008: no
trigger counts inserts; the counts per queue and status come from here, not from a transition
table of every row) and sends one ``pg_notify`` per queue that got pending tasks, in the same
transaction: all-or-nothing, and the claimers wake only when the rows are visible (a NOTIFY is
delivered at commit).

Whether an id exists is learnt from the primary key: COPY cannot skip a row, so a batch that
meets one (a retried batch, or a concurrent one holding the same ids) fails whole -- nothing is
kept -- and the caller stores it again by the staging path, which skips the ids that exist. The
ids a batch is given are almost always fresh (generated), so that second try is rare.
"""

from __future__ import annotations

from collections import Counter
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

#: After the COPY: $1 project, $2 channel, $3..$5 the rows added per (queue, status), sorted (the
#: lock order of the counts' rows, as everywhere), $6 the queues to wake (one NOTIFY each).
_COUNT_AND_NOTIFY = """
WITH counted AS (
    INSERT INTO task_counts AS c (project, queue, status, shard, n)
    SELECT $1, k.queue, k.status, pg_backend_pid(), k.n
    FROM unnest($3::text[], $4::text[], $5::bigint[]) WITH ORDINALITY AS k(queue, status, n, ord)
    ORDER BY k.ord
    ON CONFLICT (project, queue, status, shard) DO UPDATE SET n = c.n + excluded.n
)
SELECT count(pg_notify($2, q)) FROM unnest($6::text[]) AS q"""

#: What a COPY that met an existing id (or a concurrent batch holding one) raises.
CONFLICTS = (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError)


async def copy_tasks(pool: Any, records: list[tuple[Any, ...]], channel: str) -> set[str]:
    """COPYs the records of a batch with distinct ids and no dependencies (``project`` then
    the task's columns, in the order of :data:`COLUMNS`) into ``tasks`` and wakes their
    queues, in one transaction; returns the ids stored (all of them). Raises one of
    :data:`CONFLICTS`, having stored nothing, when an id exists."""
    pending = TaskStatus.PENDING.value
    added = Counter((r[2], r[5]) for r in records)
    kinds = sorted(added)
    woken = sorted({queue for queue, status in kinds if status == pending})
    async with pool.acquire() as conn, conn.transaction():
        await conn.copy_records_to_table("tasks", records=records, columns=COLUMNS)
        await conn.fetchval(
            _COUNT_AND_NOTIFY,
            records[0][0],
            channel,
            [queue for queue, _ in kinds],
            [status for _, status in kinds],
            [added[kind] for kind in kinds],
            woken,
        )
    return {r[1] for r in records}
