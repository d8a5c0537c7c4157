"""The seam itself: what a backend declares, the generic fallbacks of the capability mixins, and
what a backend that writes only the required core answers."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

import omniq.storage.base as storage_base
from omniq._time import utcnow
from omniq.exceptions import UnsupportedCapability
from omniq.models.schedule import Schedule
from omniq.models.task import Task, TaskStatus
from omniq.models.worker import WorkerInfo
from omniq.storage.base import (
    BaseEventStorage,
    BaseResultStorage,
    BaseTaskQueue,
    Capability,
    Completion,
    Failure,
    HeartbeatStatus,
    RecordLimits,
    SupportsDependencies,
    SupportsListing,
    SupportsSchedules,
)
from omniq.storage.memory import AsyncMemoryQueue

from .helpers import FUNC


async def _mixed_store(queue: BaseTaskQueue) -> list[str]:
    """Tasks in every interesting state over two queues; returns the ids of two finished ones."""
    parents = [Task(func=FUNC, queue_name="alpha") for _ in range(2)]
    await queue.enqueue_many(
        [
            *parents,
            Task(func=FUNC, queue_name="alpha"),
            Task(func=FUNC, queue_name="beta"),
            Task(func=FUNC, queue_name="beta", eta=utcnow() + timedelta(hours=1)),
        ]
    )
    await queue.enqueue_many(
        [
            Task(func=FUNC, queue_name="beta", depends_on=[parents[0].id]),
            Task(func=FUNC, queue_name="alpha", depends_on=[parents[0].id, parents[1].id]),
        ]
    )
    claimed = await queue.dequeue_many("alpha", 2, worker_id="w")
    assert sorted(t.id for t in claimed) == sorted(t.id for t in parents)
    return [t.id for t in claimed]


#: What a backend does without, by design; everything else of the seam must be there. Object
#: stores and JetStream have no push channel a worker listens on for cancels, so a cancel reaches
#: a running task there with its next heartbeat (the fallback every backend has).
DOES_WITHOUT: dict[str, frozenset[Capability]] = {
    "AsyncFileQueue": frozenset({Capability.CANCEL_SIGNAL}),
    "AsyncNATSQueue": frozenset({Capability.CANCEL_SIGNAL}),
}


async def test_each_backend_offers_every_capability_but_those_it_does_without(
    queue: BaseTaskQueue,
) -> None:
    expected = frozenset(Capability) - DOES_WITHOUT.get(type(queue).__name__, frozenset())
    assert type(queue).capabilities() == expected
    assert all(queue.supports(c) == (c in expected) for c in Capability)


async def test_the_listing_fallbacks_count_like_the_backend(queue: BaseTaskQueue) -> None:
    assert isinstance(queue, SupportsListing)
    await _mixed_store(queue)

    assert await SupportsListing._stats(queue) == await queue._stats()
    for name in ("alpha", "beta", "nowhere"):
        assert await SupportsListing._queue_size(queue, name) == await queue._queue_size(name)


async def test_the_dependents_fallback_finds_what_the_backend_finds(
    queue: BaseTaskQueue,
) -> None:
    assert isinstance(queue, SupportsDependencies)
    parent_ids = await _mixed_store(queue)

    # the fallback first: a backend may forget what it answered (memory's index is used once,
    # right after the dependency finished)
    found = []
    for ids in ([parent_ids[0]], [parent_ids[1]], ["unknown"]):
        fallback = sorted(t.id for t in await SupportsDependencies._dependents(queue, ids))
        native = sorted(t.id for t in await queue._dependents(ids))
        assert fallback == native
        found.append(len(native))
    assert found == [2, 1, 0]


async def test_the_due_schedules_fallback_finds_what_the_backend_finds(
    queue: BaseTaskQueue,
) -> None:
    assert isinstance(queue, SupportsSchedules)
    now = utcnow()
    for offset in (-120, -1, 3600):
        await queue.save_schedule(
            Schedule(func=FUNC, interval=60, next_run_at=now + timedelta(seconds=offset))
        )
    paused = Schedule(func=FUNC, interval=60, next_run_at=now - timedelta(seconds=5))
    await queue.save_schedule(paused)
    await queue.pause_schedule(paused.id)

    native = sorted(s.id for s in await queue._due_schedules(now))
    fallback = sorted(s.id for s in await SupportsSchedules._due_schedules(queue, now))

    assert len(native) == 2
    assert fallback == native


# -- a backend that writes the required core and nothing else ------------------------------
class CoreOnlyQueue(BaseTaskQueue):
    """The twelve required primitives, answered by a memory queue it keeps inside: what a new
    backend that offers no optional capability looks like from the outside."""

    backend_name = "core-only"

    def __init__(self) -> None:
        super().__init__()
        self.inner = AsyncMemoryQueue(serializer=self.serializer)

    async def _enqueue(self, items: list[tuple[Task, bytes]]) -> list[bool]:
        return await self.inner._enqueue(items)

    async def _claim(
        self, queues: list[str], limit: int, worker_id: str | None, lease: float, now: datetime
    ) -> tuple[list[Task], list[Task]]:
        return await self.inner._claim(queues, limit, worker_id, lease, now)

    async def _wait_for_tasks(self, queues: list[str], timeout: float, stop: object) -> None:
        await self.inner._wait_for_tasks(queues, timeout, None)

    async def _heartbeat(
        self, claims: list[tuple[str, str]], lease: float, now: datetime
    ) -> dict[str, HeartbeatStatus]:
        return await self.inner._heartbeat(claims, lease, now)

    async def _complete(
        self, completions: list[Completion], now: datetime, result_storage: object
    ) -> list[bool]:
        return await self.inner._complete(completions, now, None)

    async def _fail(self, failure: Failure, now: datetime) -> Task | None:
        return await self.inner._fail(failure, now)

    async def _release(self, task_id: str, claim: str, now: datetime) -> Task | None:
        return await self.inner._release(task_id, claim, now)

    async def _cancel(self, task_id: str, now: datetime) -> Task | None:
        return await self.inner._cancel(task_id, now)

    async def _requeue(self, task_id: str, reset_attempts: bool, now: datetime) -> Task | None:
        return await self.inner._requeue(task_id, reset_attempts, now)

    async def _recover_expired(self, now: datetime) -> list[Task]:
        return await self.inner._recover_expired(now)

    async def _expire(self, now: datetime) -> list[Task]:
        return await self.inner._expire(now)

    async def _get_tasks(self, task_ids: list[str]) -> dict[str, Task]:
        return await self.inner._get_tasks(task_ids)


async def test_the_required_core_is_twelve_primitives() -> None:
    assert BaseTaskQueue.__abstractmethods__ == {
        "_enqueue",
        "_claim",
        "_wait_for_tasks",
        "_heartbeat",
        "_complete",
        "_fail",
        "_release",
        "_cancel",
        "_requeue",
        "_recover_expired",
        "_expire",
        "_get_tasks",
    }


def _names(text: str) -> set[str]:
    return set(re.findall(r"`(_\w+)`", text))


def test_contributing_lists_exactly_what_a_backend_must_write() -> None:
    """CONTRIBUTING.md "Adding a backend" is what an author follows: its lists of primitives to
    write (core, results, events, each capability mixin) are held against the abstract methods,
    so a primitive added to an interface cannot be left out of the guide."""
    text = (Path(__file__).parents[2] / "CONTRIBUTING.md").read_text()
    core = text.split("writes its 12 required", 1)[1].split("Their contracts", 1)[0]
    assert _names(core) == BaseTaskQueue.__abstractmethods__
    results = text.split("**Results** (`BaseResultStorage`):", 1)[1].split(";", 1)[0]
    assert _names(results) == BaseResultStorage.__abstractmethods__
    events = text.split("**Events** (`BaseEventStorage`):", 1)[1].split("\n\n", 1)[0]
    assert _names(events) == BaseEventStorage.__abstractmethods__
    rows = [line for line in text.splitlines() if line.startswith("| `Supports")]
    mixins = {name for name in storage_base.__all__ if name.startswith("Supports")}
    assert {row.split("`")[1] for row in rows} == mixins
    for row in rows:
        name, must, fallback = (cell.strip() for cell in row.strip("|").split("|"))
        mixin = getattr(storage_base, name.split("`")[1])
        own = mixin.__abstractmethods__ - BaseTaskQueue.__abstractmethods__
        if mixin is SupportsDependencies:  # "(includes listing)"
            own -= SupportsListing.__abstractmethods__
        assert _names(must) == own, name
        if "`RecordLimits`" in fallback:
            assert _names(fallback) == (
                RecordLimits.__abstractmethods__ - BaseTaskQueue.__abstractmethods__
            )


async def test_a_core_only_backend_runs_the_task_lifecycle() -> None:
    async with CoreOnlyQueue() as queue:
        assert queue.capabilities() == frozenset()
        done_id = await queue.enqueue(FUNC, args=(1, 2))
        retry_id = await queue.enqueue(FUNC, args=(3, 4), max_retries=2)

        first = await queue.dequeue(timeout=1)
        assert first is not None
        assert first.id == done_id
        assert await queue.complete(first.id, first.claim or "")
        second = await queue.dequeue(timeout=1)
        assert second is not None
        assert second.id == retry_id
        assert await queue.heartbeat(second.id, second.claim or "") is HeartbeatStatus.OK
        failed = await queue.fail(
            second.id, second.claim or "", error_message="boom", retry_at=utcnow()
        )
        assert failed is not None
        assert failed.status is TaskStatus.PENDING

        done = await queue.get_task(done_id)  # the fallback through _get_tasks
        assert done is not None
        assert done.status is TaskStatus.SUCCESS
        assert await queue.get_task("unknown") is None
        assert await queue.settle_waiting() == 0  # nothing can wait without dependencies


@pytest.mark.parametrize(
    ("capability", "call"),
    [
        (Capability.LISTING, lambda q: q.list_tasks()),
        (Capability.LISTING, lambda q: q.list_dead()),
        (Capability.LISTING, lambda q: q.get_queue_size("default")),
        (Capability.LISTING, lambda q: q.stats()),
        (Capability.PURGE, lambda q: q.purge("default")),
        (Capability.SCHEDULES, lambda q: q.save_schedule(Schedule(func=FUNC, interval=60))),
        (Capability.SCHEDULES, lambda q: q.list_schedules()),
        (Capability.SCHEDULES, lambda q: q.claim_due_schedules()),
        (Capability.WORKERS, lambda q: q.list_workers()),
        (
            Capability.WORKERS,
            lambda q: q.register_worker(
                WorkerInfo(
                    worker_id="w",
                    worker_type="async",
                    hostname="h",
                    pid=1,
                    queues=["default"],
                    concurrency=1,
                    started_at=utcnow(),
                ),
                ttl=5,
            ),
        ),
    ],
)
async def test_a_missing_capability_is_named_with_the_backend(
    capability: Capability, call: object
) -> None:
    async with CoreOnlyQueue() as queue:
        assert not queue.supports(capability)
        with pytest.raises(UnsupportedCapability) as caught:
            await call(queue)  # type: ignore[operator]
    assert "'core-only' backend (CoreOnlyQueue)" in str(caught.value)
    assert repr(capability.value) in str(caught.value)


async def test_a_dependent_task_is_refused_where_dependencies_are_not_offered() -> None:
    async with CoreOnlyQueue() as queue:
        parent = await queue.enqueue(FUNC)
        with pytest.raises(UnsupportedCapability, match="'dependencies'"):
            await queue.enqueue(FUNC, depends_on=[parent])
        assert await queue.get_task(parent) is not None


async def test_the_dashboard_shows_no_worker_registry_where_there_is_none() -> None:
    pytest.importorskip("litestar", reason="the dashboard extra is not installed")
    from omniq import AsyncOmniQ
    from omniq.dashboard.queries import Queries
    from omniq.storage.memory import AsyncMemoryResultStorage

    app = AsyncOmniQ(task_queue=CoreOnlyQueue(), result_store=AsyncMemoryResultStorage())
    async with app:
        assert await Queries(app).workers() is None
