"""Enqueue on Redis, all or nothing.

A batch of up to ``CHUNK`` tasks is one script call (``enqueue.lua``). A larger one is sent in
pieces of ``CHUNK`` that ``stage.lua`` keeps out of sight, under keys of the batch's own random
token that expire by themselves; the last piece travels with the commit, one ``enqueue.lua``
call that stores the staged pieces and its own. So a producer killed or cut off mid-batch
leaves nothing visible (its staged pieces expire), a retry of the same batch with the same ids
stores every task once, and a dependency is never missing because its piece was not stored.

The price: the commit of a large batch is one script, and Redis serves nothing else while it
runs (a few microseconds per task; see the README's Reliability section for the figure).
"""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

import msgspec

from omniq._time import utcnow
from omniq.exceptions import BackendUnavailable
from omniq.models.task import Task
from omniq.storage.redis._conn import flags_merge, opt_us, to_us
from omniq.storage.redis._rows import CHUNK, RedisParts

#: Priorities and ready times beyond these cannot be ordered exactly in a ready-set member.
MAX_PRIORITY = 2**52 - 1
_MIN_READY_US = -4_000_000_000_000_000
_MAX_READY_US = 5_000_000_000_000_000
#: How long staged pieces wait for their commit, from the last piece staged: the memory a
#: producer that died mid-batch leaves behind is freed after this.
STAGE_TTL_MS = 600_000
#: Encodes the task fields of an enqueue (see ``enqueue_args``).
_PACK = msgspec.msgpack.Encoder().encode
#: What enqueue.lua answers for a staged batch instead of its flags.
_GONE, _DONE = b"gone", b"done"


def commit_merge(first: Any, again: Any) -> Any:
    """Merges the replies of an enqueue run again after a WAIT fell short (see ``Script``):
    'done' means the first run committed the staged batch, so its flags stand."""
    if again == _DONE:
        return first
    if isinstance(first, bytes) or isinstance(again, bytes):
        return again
    return flags_merge(first, again)


def enqueue_args(items: list[tuple[Task, bytes]]) -> list[Any]:
    """The arguments of enqueue.lua for a piece of a batch (checked for what it orders): the
    tasks' fields in one msgpack array, then their payloads. Two arguments per task instead
    of a dozen: redis-py encodes each argument in Python, which costs more than the encoding
    of the array, and the script unpacks the array in C (``cmsgpack``). Every field travels as
    a string, so Lua never turns a large number into a float."""
    fields: list[tuple[Any, ...]] = []
    for task, _ in items:
        if not -MAX_PRIORITY <= task.priority <= MAX_PRIORITY:
            raise ValueError(
                f"task {task.id!r}: priority {task.priority!r} is outside the range the "
                f"Redis backend orders exactly (-{MAX_PRIORITY}..{MAX_PRIORITY})"
            )
        created = to_us(task.created_at)
        eta = opt_us(task.eta)
        for name, value in (("eta", int(eta or 0)), ("created_at", created)):
            if not _MIN_READY_US <= value <= _MAX_READY_US:
                raise ValueError(
                    f"task {task.id!r}: {name} {getattr(task, name).isoformat()} is outside "
                    "the years 1843..2128 that the Redis backend orders exactly"
                )
        fields.append(
            (
                task.id,
                task.queue_name,
                str(task.priority),
                eta,
                opt_us(task.expires_at),
                str(created),
                task.func,
                task.schedule_id or "",
                repr(task.result_ttl) if task.result_ttl is not None else "",
                str(task.max_attempts),
                task.depends_on,
            )
        )
    return [_PACK(fields), *(payload for _, payload in items)]


class RedisEnqueue(RedisParts):
    """The enqueue primitive of the Redis task queue."""

    async def _enqueue(self, items: list[tuple[Task, bytes]]) -> list[bool]:
        now = utcnow()
        # every piece is checked before the first is sent
        *staged, last = [enqueue_args(items[i : i + CHUNK]) for i in range(0, len(items), CHUNK)]
        token = secrets.token_hex(8) if staged else ""
        try:
            for number, args in enumerate(staged):
                await self._run("stage", now, token, number, STAGE_TTL_MS, *args)
            flags = await self._run("enqueue", now, token, len(staged), *last)
        except Exception:
            if token:  # not needed for correctness (they expire), only to free the memory now
                with contextlib.suppress(Exception):
                    keys = [f"{self._base}:stage:{token}:{i}" for i in range(len(staged))]
                    await self.redis.delete(*keys)
            raise
        if flags == _GONE:
            raise BackendUnavailable(
                f"Redis at {self._conn.describe()}: the staged pieces of a batch of "
                f"{len(items)} tasks were gone at its commit (a failover, or more than "
                f"{STAGE_TTL_MS // 1000} s between two pieces); none of the batch was stored, "
                "so enqueueing it again is safe"
            )
        return [bool(flag) for flag in flags]


__all__ = ["MAX_PRIORITY", "STAGE_TTL_MS", "RedisEnqueue", "commit_merge", "enqueue_args"]
