"""Rate limits and key concurrency limits (issue 19 item 2): the token bucket and the concurrency
slots every backend with ``Capability.LIMITS`` keeps for all workers, and the hand-back with an
eta that holds a task back without failing it."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

import omniq.storage.base.limits as base_limits
from omniq._time import utcnow
from omniq.exceptions import UnsupportedCapability
from omniq.models.limits import RateLimit, parse_rate_limit
from omniq.models.task import TaskStatus
from omniq.storage.base import BaseTaskQueue, Capability

from .helpers import FUNC, WAKE_UP_BOUND, claim, claim_token


def needs_limits(queue: BaseTaskQueue) -> None:
    if not queue.supports(Capability.LIMITS):
        pytest.skip(f"{queue.backend_name} does not keep limits (refused loudly, tested below)")


# -- the hand-back with an eta (every backend) ----------------------------------------------------
async def test_a_task_handed_back_with_an_eta_waits_for_it_without_counting_the_attempt(
    queue: BaseTaskQueue,
) -> None:
    held_id = await queue.enqueue(FUNC, args=(1, 2), max_retries=0)
    held = await claim(queue, lease=30)
    eta = utcnow() + timedelta(seconds=1.0)

    assert await queue.release(held.id, claim_token(held), eta=eta) is True

    stored = await queue.get_task(held_id)
    assert stored is not None
    assert stored.status is TaskStatus.PENDING
    assert stored.attempts == 0
    # other work flows meanwhile
    other_id = await queue.enqueue(FUNC, args=(3, 4))
    assert (await claim(queue, lease=30)).id == other_id
    assert await queue.dequeue() is None
    # and the held task comes back once its eta is due, its attempt still not counted
    again = await queue.dequeue(timeout=WAKE_UP_BOUND)
    assert again is not None
    assert again.id == held_id
    assert utcnow() >= eta - timedelta(milliseconds=5)
    assert again.attempts == 1


# -- the token bucket ------------------------------------------------------------------------------
async def test_a_bucket_gives_its_burst_then_says_when_the_next_token_is_due(
    queue: BaseTaskQueue,
) -> None:
    needs_limits(queue)
    limit = RateLimit(count=5, period=1.0, burst=5)

    waits = [await queue.take_token("task:a", limit) for _ in range(5)]
    assert waits == [0.0] * 5
    wait = await queue.take_token("task:a", limit)
    assert 0.0 < wait <= limit.interval + 0.05
    # another key has its own bucket
    assert await queue.take_token("task:b", limit) == 0.0

    await asyncio.sleep(wait + 0.02)
    assert await queue.take_token("task:a", limit) == 0.0
    assert await queue.take_token("task:a", limit) > 0.0


async def test_a_bucket_refills_at_its_rate(queue: BaseTaskQueue) -> None:
    needs_limits(queue)
    limit = parse_rate_limit("20/s")  # 20 tokens a second, room for 20
    taken = 0
    start = asyncio.get_running_loop().time()
    while asyncio.get_running_loop().time() - start < 1.5:
        if await queue.take_token("queue:q", limit) == 0.0:
            taken += 1
        else:
            await asyncio.sleep(0.005)
    # the burst (20) plus 1.5 s at 20/s (30): never more, and not much fewer
    assert 40 <= taken <= 51


# -- key concurrency -------------------------------------------------------------------------------
async def test_a_key_admits_at_most_its_limit_and_a_release_frees_a_slot(
    queue: BaseTaskQueue,
) -> None:
    needs_limits(queue)
    assert await queue.acquire_slot("user:42", "h1", 2, 30) is True
    assert await queue.acquire_slot("user:42", "h2", 2, 30) is True
    assert await queue.acquire_slot("user:42", "h3", 2, 30) is False
    # a holder already in is renewed, not refused
    assert await queue.acquire_slot("user:42", "h1", 2, 30) is True
    # another key counts apart
    assert await queue.acquire_slot("user:7", "h3", 2, 30) is True

    await queue.release_slot("user:42", "h2")
    assert await queue.acquire_slot("user:42", "h3", 2, 30) is True
    await queue.release_slot("user:42", "nobody")  # releasing what is not held is harmless


async def test_a_slot_whose_holder_is_gone_lapses_with_its_lease(queue: BaseTaskQueue) -> None:
    needs_limits(queue)
    # a lease of 1 s: room for a slow store (a File backend under load) between the two calls
    assert await queue.acquire_slot("k", "killed-worker", 1, 1.0) is True
    assert await queue.acquire_slot("k", "other", 1, 30) is False
    await asyncio.sleep(1.1)
    assert await queue.acquire_slot("k", "other", 1, 30) is True


async def test_usage_shows_buckets_and_keys(queue: BaseTaskQueue) -> None:
    needs_limits(queue)
    limit = parse_rate_limit("2/s")
    await queue.take_token("task:mail", limit)
    await queue.take_token("task:mail", limit)
    await queue.acquire_slot("user:1", "h1", 3, 30)
    await queue.acquire_slot("user:1", "h2", 3, 30)

    usage = await queue.limit_usage()

    [bucket] = [b for b in usage.buckets if b.key == "task:mail"]
    assert bucket.rate == "2/s"
    assert bucket.tokens < 1
    assert 0 < bucket.next_token_in <= 0.5 + 0.05
    [slot] = [s for s in usage.slots if s.key == "user:1"]
    assert (slot.limit, slot.running) == (3, 2)


# -- records that hold nothing any more are deleted -----------------------------------------------
_KEYS = ("task:fast", "task:slow", "user:done", "user:lapsed", "user:live")


async def _stored(queue: Any) -> int:
    """How many limit records (and index entries) the store itself holds, read past the
    interface: what a store keeps, not what ``limit_usage`` chooses to show."""
    name = queue.backend_name
    if name == "memory":
        return len(queue._limit_records)
    if name in ("file", "sqlite"):
        return len(await queue._read_limits())
    if name == "nats":  # every subject of the stream, tombstones included
        return len(await queue._kv.keys("l.>"))
    if name == "redis":
        r, base = queue.redis, queue._base
        found = sum(
            [await r.exists(f"{base}:rl:{k}", f"{base}:slots:{k}") for k in _KEYS]
            + [await r.scard(f"{base}:limits:buckets"), await r.hlen(f"{base}:limits:slots")]
            + [await r.zcard(f"{base}:limits:{due}") for due in ("bdue", "sdue")]
        )
        return int(found)
    assert name == "postgres", name
    count: int = await queue.pool.fetchval(
        "SELECT (SELECT count(*) FROM rate_buckets WHERE project = $1)"
        " + (SELECT count(*) FROM concurrency_keys WHERE project = $1)"
        " + (SELECT count(*) FROM concurrency_slots WHERE project = $1)",
        queue.project_name,
    )
    return count


async def test_a_full_bucket_and_a_key_without_live_slots_are_deleted(
    queue: BaseTaskQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One key per user must not grow the store for good: a sweep deletes the buckets that are
    full again and the keys whose slots were all released or lapsed, and keeps the rest. Time
    is moved by hand (the stores are given "now"), not slept."""
    needs_limits(queue)
    start = utcnow()
    clock = [start]
    monkeypatch.setattr(base_limits, "utcnow", lambda: clock[0])

    def at(seconds: float) -> datetime:
        clock[0] = start + timedelta(seconds=seconds)
        return clock[0]

    slow = parse_rate_limit("1/m")  # full again 60 s after its token
    assert await queue.take_token("task:fast", parse_rate_limit("100/s")) == 0.0
    assert await queue.take_token("task:slow", slow) == 0.0
    assert await queue.acquire_slot("user:done", "h1", 1, 30) is True
    await queue.release_slot("user:done", "h1")
    assert await queue.acquire_slot("user:lapsed", "killed", 1, 1.0) is True
    assert await queue.acquire_slot("user:live", "h2", 1, 30) is True
    assert await _stored(queue) > 0

    at(5)
    await queue.sweep_limits()
    usage = await queue.limit_usage()
    assert [b.key for b in usage.buckets] == ["task:slow"]
    assert [(s.key, s.running) for s in usage.slots] == [("user:live", 1)]
    # what stayed still holds: the slow bucket has no token for 55 s, the live key no slot
    assert 54 < await queue.take_token("task:slow", slow) <= 55
    assert await queue.acquire_slot("user:live", "h3", 1, 30) is False
    # and what went starts again as new: a full bucket, a free key
    assert await queue.take_token("task:fast", parse_rate_limit("1/s")) == 0.0
    assert await queue.acquire_slot("user:lapsed", "h4", 1, 1.0) is True

    at(120)  # the slow bucket is full again and every slot has lapsed
    assert await queue.sweep_limits() >= 2
    assert await queue.limit_usage() == base_limits.LimitUsage()
    assert await _stored(queue) == 0
    assert await queue.sweep_limits() == 0


async def test_a_backend_without_limits_refuses_them_loudly(queue: BaseTaskQueue) -> None:
    if queue.supports(Capability.LIMITS):
        pytest.skip(f"{queue.backend_name} keeps limits")
    with pytest.raises(UnsupportedCapability, match="limits"):
        await queue.take_token("task:a", parse_rate_limit("1/s"))
    with pytest.raises(UnsupportedCapability, match="limits"):
        await queue.enqueue(FUNC, rate_limit="1/s")
