"""What the parts of the Redis task queue share: running a script, and turning the rows the
scripts return into tasks (see ``queue.py`` for the key layout)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from omniq.models.task import Task, TaskStatus
from omniq.serialization import Serializer
from omniq.storage.base import decoded_state, lay_progress, record_view
from omniq.storage.redis._conn import RedisComponent, Script, from_us, to_us

#: Tasks per script call for bulk work, so one call never blocks Redis for long.
CHUNK = 1000
#: The hash fields of a task row, after its id (FIELDS in tasks_lib.lua). A row is [id, p, st,
#: exp, att, eta, sa, fa, w, c, le, cr, et, em, etb, f, q, pr, sid, ca, rt, mx, pg]; a claimed
#: row stops before pg (the progress: a claim has no use for it).
ROW_FIELDS = (
    *("p", "st", "exp", "att", "eta", "sa", "fa", "w", "c", "le", "cr", "et", "em", "etb"),
    *("f", "q", "pr", "sid", "ca", "rt", "mx", "pg"),
)
_PROGRESS = len(ROW_FIELDS)


def opt_str(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


def opt_time(value: bytes | None) -> datetime | None:
    return None if value is None else from_us(value)


def row_id(row: list[Any]) -> str:
    first = row[0]
    return first.decode() if isinstance(first, bytes) else str(first)


def shell(row: list[Any]) -> Task:
    """A task from the identity fields a script returns after the state (see ``lay_state``)."""
    return Task(
        func=row[15].decode(),
        id=row_id(row),
        queue_name=row[16].decode(),
        priority=int(row[17]),
        schedule_id=opt_str(row[18]),
        created_at=from_us(row[19]),
        result_ttl=float(row[20]) if row[20] is not None else None,
        max_retries=int(row[21]) - 1,
    )


def lay_state(task: Task, row: list[Any]) -> Task:
    """The state fields of ``row`` laid over the decoded task."""
    task.status = TaskStatus(row[2].decode())
    task.expires_at = opt_time(row[3])
    try:
        task.attempts = int(row[4] or 0)
    except ValueError:
        raise ValueError(f"attempts {row[4]!r} is not an integer") from None
    task.eta = opt_time(row[5])
    task.started_at = opt_time(row[6])
    task.finished_at = opt_time(row[7])
    task.worker_id = opt_str(row[8])
    task.claim = opt_str(row[9])
    # the lease field of a task that is no longer running is left behind: ignore it
    task.lease_expires_at = opt_time(row[10]) if task.status is TaskStatus.RUNNING else None
    task.cancel_requested = row[11] == b"1"
    task.error_type = opt_str(row[12])
    task.error_message = opt_str(row[13])
    task.error_traceback = opt_str(row[14])
    return task


class RedisParts(RedisComponent):
    """Base of the Redis task queue's parts (``AsyncRedisQueue`` sets these attributes)."""

    serializer: Serializer
    max_finished: int
    _scripts: dict[str, Script]

    async def _run(self, name: str, now: datetime, *args: Any) -> Any:
        """Runs script ``name`` on the project's keys, with "now" and ``max_finished`` first."""
        return await self._scripts[name](
            keys=[self._base], args=[to_us(now), self.max_finished, *args]
        )

    def _lay(self, task: Task, row: list[Any]) -> Task:
        raw = row[_PROGRESS] if len(row) > _PROGRESS else None
        return lay_progress(self.serializer, lay_state(task, row), raw)

    def _decode(self, row: list[Any]) -> Task:
        """The task a claim runs (SerializationError or CorruptRecord if it cannot be read)."""
        return decoded_state(self.serializer, row[1], row_id(row), lambda t: self._lay(t, row))

    def _view(self, row: list[Any]) -> Task:
        """What readers see: a task whose payload cannot be decoded (a poison task, already
        DEAD) is still shown, with its state and without its arguments; a corrupt record as
        DEAD with the reason (see ``record_view``)."""
        return record_view(
            self.serializer, row[1], lambda: shell(row), row_id(row), lambda t: self._lay(t, row)
        )


__all__ = ["CHUNK", "ROW_FIELDS", "RedisParts", "lay_state", "opt_str", "opt_time", "shell"]
