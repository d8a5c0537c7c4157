"""How an idle Redis claimer waits, and claims in the same round trip as its wake-up.

An idle claimer blocks in BLPOP on the ``B:wake:<queue>`` lists of its queues (see ``queue.py``).
Sent alone, the BLPOP answers "a task may be there" and the claim follows in a second round trip.
Here the claim script is pipelined right behind the BLPOP on the same connection: Redis holds
the script in the connection's input until the BLPOP returns (a wake token, or its timeout) and
runs it at once, so the task comes back with the wake-up (Huey and taskiq pop their message in
their one blocking call; this is the same single round trip, with the claim's lease and
exactly-once checks kept).

Two things differ from a claim sent on its own:

- "now": the script runs when the wake-up comes, not when it was sent, so it reads the server's
  clock and moves it onto this client's by an offset measured with ``TIME`` (``~offset``, see
  tasks_lib.lua), and the lease is given as a duration (``+us``);
- ending the wait: the BLPOP also watches a stop list of its own; a stop pushes two tokens
  there, BLPOP takes one and the claim, finding the other, claims nothing. Cancelling the
  command (dropping the connection) is kept for a cancelled caller only: a claim the server
  ran just before would then be known to nobody and wait for its lease to run out.

A Cluster client cannot pipeline a blocking command with a script on one connection in
redis-py, so it waits with a plain BLPOP and claims afterwards (the base behaviour).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from omniq._aio import cancel_and_wait
from omniq._time import utcnow
from omniq.exceptions import SerializationError
from omniq.models.task import Task, TaskStatus
from omniq.storage.base import Failure, undecodable_kind
from omniq.storage.redis._conn import Client, aioredis, blocking, done, is_missing, to_us
from omniq.storage.redis._rows import RedisParts

#: seconds between two measurements of the server's clock against this client's
_CLOCK_CHECK = 60.0
#: ``TIME`` round trips per measurement
_CLOCK_SAMPLES = 5
#: how long an unused stop list may outlive its wait
_STOP_TTL_MS = 60_000


class RedisWakeClaims(RedisParts):
    """The waiting side of the Redis task queue's claims (a part of ``AsyncRedisQueue``)."""

    _base: str
    _blocking: Client | None
    _next_due: dict[tuple[str, ...], int | None]

    if TYPE_CHECKING:  # AsyncRedisQueue's and BaseTaskQueue's

        async def _fail(self, failure: Failure, now: datetime) -> Task | None: ...

        async def _settle_ended(self, ended: list[Task]) -> None: ...

    _clock_offset: int | None = None
    _clock_checked = 0.0

    async def _take(
        self, claimed_rows: list[Any], ended_rows: list[Any], now: datetime
    ) -> tuple[list[Task], list[Task], bool]:
        """The tasks of a claim's rows: (claimed, ended, whether a poison task took a place). A
        payload that does not decode is made DEAD at once, with the reason."""
        claimed: list[Task] = []
        ended = [self._view(row) for row in ended_rows]
        poisoned = False
        for row in claimed_rows:
            try:
                claimed.append(self._decode(row))
            except SerializationError as exc:
                poisoned = True
                dead = await self._fail(
                    Failure(
                        row[0].decode(),
                        row[9].decode(),
                        TaskStatus.DEAD,
                        error_type=undecodable_kind(exc),
                        error_message=str(exc),
                    ),
                    now,
                )
                if dead is not None:
                    ended.append(dead)
        return claimed, ended, poisoned

    def _wait_keys(self, queues: list[str], timeout: float) -> tuple[list[str], float]:
        """The wake lists of ``queues`` and how long to wait: no longer than until the earliest
        delayed task the last empty claim saw comes due."""
        due = self._next_due.pop(tuple(queues), None)
        if due is not None:
            timeout = min(timeout, max(0.0, (due - to_us(utcnow())) / 1e6) + 0.001)
        return [f"{self._base}:wake:{q}" for q in queues], max(timeout, 0.001)

    async def _wait_for_tasks(
        self, queues: list[str], timeout: float, stop: asyncio.Event | None
    ) -> None:
        keys, wait = self._wait_keys(queues, timeout)
        if stop is not None and stop.is_set():
            return
        client = self._blocking
        assert client is not None, "connected queues have a blocking client"
        # BLPOP on a connection of its own; cancelling it (stop, or the caller cancelled)
        # disconnects that connection in redis-py, so no late reply can reach a later command
        waiting = asyncio.ensure_future(blocking(done(client.blpop(keys, timeout=wait)), wait))
        if stop is None:
            await waiting
            return
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait((waiting, stopper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not waiting.done():
                # cancelled again if redis-py swallows the first cancel (see omniq._aio), so a
                # stop never waits for the BLPOP's own timeout
                await cancel_and_wait(waiting)
        if not waiting.cancelled():
            waiting.result()  # a connection error surfaces to the caller

    async def _offset(self) -> int:
        """This client's clock minus the server's, in microseconds (measured at most once a
        minute: clocks drift slowly, and on one host the offset is about zero). Of a few
        ``TIME`` round trips the shortest is kept: its midpoint is off by at most half of it."""
        if self._clock_offset is None or time.monotonic() - self._clock_checked > _CLOCK_CHECK:
            best: tuple[int, int] | None = None
            for _ in range(_CLOCK_SAMPLES):
                before = to_us(utcnow())
                seconds, micros = await done(self.redis.time())
                after = to_us(utcnow())
                offset = (before + after) // 2 - (int(seconds) * 1_000_000 + int(micros))
                if best is None or after - before < best[0]:
                    best = (after - before, offset)
            assert best is not None
            self._clock_offset = best[1]
            self._clock_checked = time.monotonic()
        return self._clock_offset

    async def _wait_and_claim(
        self,
        queues: list[str],
        limit: int,
        worker_id: str | None,
        lease: float,
        timeout: float,
        stop: asyncio.Event | None,
    ) -> tuple[list[Task], list[Task]] | None:
        client = self._blocking
        assert client is not None, "connected queues have a blocking client"
        if not isinstance(client, aioredis.Redis):  # a Cluster: wait, then claim
            await self._wait_for_tasks(queues, timeout, stop)
            return None
        if stop is not None and stop.is_set():
            return None
        offset = await self._offset()
        keys, wait = self._wait_keys(queues, timeout)
        token = secrets.token_hex(6)
        stop_key = f"{self._base}:wakestop:{token}"
        args: list[str | int] = [f"~{offset}", self.max_finished, f"+{round(lease * 1e6)}"]
        args.append(worker_id or "")
        args += [limit, token, len(queues), *queues, token]
        head = self._scripts["claim"].head()

        async def wake_and_claim() -> list[Any]:
            async with client.pipeline(transaction=False) as pipe:
                pipe.blpop([*keys, stop_key], timeout=wait)
                pipe.execute_command(*head, 1, self._base, *args)
                replies: list[Any] = await pipe.execute(raise_on_error=False)
            return replies

        waiting = asyncio.ensure_future(blocking(wake_and_claim(), wait))
        try:
            if stop is not None:
                stopper = asyncio.ensure_future(stop.wait())
                try:
                    await asyncio.wait((waiting, stopper), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stopper.cancel()
                if not waiting.done():
                    # two tokens: BLPOP takes one, the claim behind it sees the other and claims
                    # nothing; the wait then ends with its replies read, so nothing is lost
                    async with self.redis.pipeline(transaction=False) as pipe:
                        pipe.lpush(stop_key, "1", "1")
                        pipe.pexpire(stop_key, _STOP_TTL_MS)
                        await pipe.execute()
            replies = await waiting
        except BaseException:
            if not waiting.done():  # the caller was cancelled: drop the connection
                await cancel_and_wait(waiting)
            raise
        return await self._claimed_with_wake(queues, replies)

    async def _claimed_with_wake(
        self, queues: list[str], replies: list[Any]
    ) -> tuple[list[Task], list[Task]] | None:
        """The claim that came back with a wake-up, or None to claim the usual way."""
        reply = replies[1]
        if is_missing(reply):  # scripts or functions were flushed: claim the usual way
            return None
        if isinstance(reply, Exception):
            raise reply
        if isinstance(replies[0], Exception):
            raise replies[0]
        next_due, claimed_rows, ended_rows = reply
        self._next_due[tuple(queues)] = int(next_due) if next_due is not None else None
        claimed, ended, poisoned = await self._take(claimed_rows, ended_rows, utcnow())
        if poisoned and not claimed:  # a poison task took the place: claim again at once
            await self._settle_ended(ended)
            return None
        return claimed, ended


__all__ = ["RedisWakeClaims"]
