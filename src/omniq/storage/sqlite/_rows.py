"""What the parts of the SQLite task queue share: the task columns every read returns, the
statements of ``sql/queries.sql`` with them filled in, and rows into tasks (the shared decoder
with this store's state laid over it)."""

from __future__ import annotations

import functools
from typing import Any

from omniq._time import utcnow
from omniq.models.task import Task, TaskStatus
from omniq.storage.base import decoded_state, lay_progress, record_view
from omniq.storage.sqlite._component import SQLiteComponent
from omniq.storage.sqlite._db import from_us
from omniq.storage.sqlite._schema import FILES

Row = tuple[Any, ...]

# columns every read returns, in this order
_COLUMN_NAMES = (
    "seq", "id", "queue", "priority", "ready_at", "func", "schedule_id", "max_retries",
    "created_at", "status", "attempts", "eta", "expires_at", "started_at", "finished_at",
    "worker_id", "claim", "lease_expires_at", "cancel_requested", "error_type", "error_message",
    "error_traceback", "payload", "progress",
)  # fmt: skip
COLUMNS = ", ".join(_COLUMN_NAMES)
T_COLUMNS = ", ".join(f"t.{name}" for name in _COLUMN_NAMES)  # the same, from ``omniq_tasks AS t``
(
    SEQ, ID, QUEUE, PRIORITY, READY_AT, FUNC, SCHEDULE_ID, MAX_RETRIES, CREATED_AT, STATUS,
    ATTEMPTS, ETA, EXPIRES_AT, STARTED_AT, FINISHED_AT, WORKER_ID, CLAIM, LEASE_EXPIRES_AT,
    CANCEL_REQUESTED, ERROR_TYPE, ERROR_MESSAGE, ERROR_TRACEBACK, PAYLOAD, PROGRESS,
) = range(len(_COLUMN_NAMES))  # fmt: skip

#: The statements of sql/queries.sql with the task columns filled in.
SQL: dict[str, str] = {
    name: sql.replace("{columns}", COLUMNS).replace("{t_columns}", T_COLUMNS)
    for name, sql in FILES.queries.items()
}
#: list_tasks in enqueue order (False) and newest first (True).
_LIST_SQL = {
    desc: SQL["list_tasks"]
    .replace("{cmp}", "<" if desc else ">")
    .replace("{dir}", "DESC" if desc else "ASC")
    for desc in (False, True)
}


@functools.lru_cache(maxsize=64)
def _claim_sql(n_queues: int) -> tuple[str, str]:
    """(expire, claim) statements for ``n_queues`` queues; ``:q0``... name them in order."""
    names = ", ".join(f":q{i}" for i in range(n_queues))
    expire = SQL["expire_queues"].replace("{names}", names)
    arms = " UNION ALL ".join(SQL["claim_arm"].replace("{i}", str(i)) for i in range(n_queues))
    return expire, SQL["claim"].replace("{arms}", arms)


@functools.lru_cache(maxsize=64)
def _corrupt_sql(n_queues: int) -> str:
    """The pending tasks of ``n_queues`` queues whose ready_at is no number (see queries.sql)."""
    arms = " UNION ALL ".join(SQL["corrupt_arm"].replace("{i}", str(i)) for i in range(n_queues))
    return SQL["corrupt_pending"].replace("{arms}", arms)


def _claim_order(row: Row) -> tuple[int, int, int]:
    """Claim order within a queue (a corrupt ready_at last: it is not comparable)."""
    ready = row[READY_AT]
    return (-row[PRIORITY], ready if type(ready) is int else 2**63, row[SEQ])


@functools.lru_cache(maxsize=64)
def _due_sql(n_queues: int) -> str:
    arms = " UNION ALL ".join(SQL["due_arm"].replace("{i}", str(i)) for i in range(n_queues))
    return SQL["due"].replace("{arms}", arms)


def _lay_state(task: Task, row: Row) -> Task:
    """The columns are the state of record: lay them over the decoded payload."""
    if type(row[READY_AT]) is not int:  # SQLite stores what it is given: a text never comes due
        raise ValueError(f"ready_at {row[READY_AT]!r} is not a time")
    task.status = TaskStatus(row[STATUS])
    task.attempts = row[ATTEMPTS]
    task.eta = from_us(row[ETA])
    task.expires_at = from_us(row[EXPIRES_AT])
    task.started_at = from_us(row[STARTED_AT])
    task.finished_at = from_us(row[FINISHED_AT])
    task.worker_id = row[WORKER_ID]
    task.claim = row[CLAIM]
    task.lease_expires_at = from_us(row[LEASE_EXPIRES_AT])
    task.cancel_requested = bool(row[CANCEL_REQUESTED])
    task.error_type = row[ERROR_TYPE]
    task.error_message = row[ERROR_MESSAGE]
    task.error_traceback = row[ERROR_TRACEBACK]
    return task


def _shell(row: Row) -> Task:
    return Task(
        func=row[FUNC],
        id=row[ID],
        queue_name=row[QUEUE],
        priority=row[PRIORITY],
        schedule_id=row[SCHEDULE_ID],
        max_retries=row[MAX_RETRIES],
        created_at=from_us(row[CREATED_AT]) or utcnow(),
    )


class SQLiteRows(SQLiteComponent):
    """Base of the SQLite task queue's parts: rows into tasks, and the project's parameters."""

    def _lay(self, task: Task, row: Row) -> Task:
        return lay_progress(self.serializer, _lay_state(task, row), row[PROGRESS])

    def _decode(self, row: Row) -> Task:
        return decoded_state(self.serializer, row[PAYLOAD], row[ID], lambda t: self._lay(t, row))

    def _view(self, row: Row) -> Task:
        """A task as readers see it; a poison payload still shows its state, without arguments,
        and a corrupt record shows as DEAD with the reason (see ``record_view``)."""
        return record_view(
            self.serializer,
            row[PAYLOAD],
            lambda: _shell(row),
            row[ID],
            lambda t: self._lay(t, row),
        )

    def _moved(self, row: Row | None) -> Task | None:
        """The task a transition returned, if any; claimers are woken when it is PENDING."""
        if row is None:
            return None
        task = self._view(row)
        if task.status is TaskStatus.PENDING:
            self.db.hub.notify_tasks([task.queue_name])
        return task

    def _params(self, **values: Any) -> dict[str, Any]:
        return {"project": self.project_name, **values}


__all__ = [
    "COLUMNS",
    "SQL",
    "T_COLUMNS",
    "Row",
    "SQLiteRows",
]
