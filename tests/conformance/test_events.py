"""Event storage (log and query events) and the events a task queue emits on its own."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from omniq.models.event import EventType, TaskEvent
from omniq.storage.base import BaseEventStorage, BaseTaskQueue

from .helpers import FUNC, Poison, claim, claim_token, ms_now, record_events


def _event(
    task_id: str,
    event_type: EventType,
    at: datetime,
    queue_name: str = "default",
    **fields: Any,
) -> TaskEvent:
    return TaskEvent(
        task_id=task_id, event_type=event_type, timestamp=at, queue_name=queue_name, **fields
    )


def _timeline(start: datetime, count: int) -> list[TaskEvent]:
    """``count`` events one second apart, alternating two tasks, two queues and three types."""
    types = [EventType.ENQUEUED, EventType.EXECUTING, EventType.COMPLETED]
    return [
        _event(
            f"task-{i % 2}",
            types[i % 3],
            start + timedelta(seconds=i),
            queue_name="high" if i % 2 else "low",
        )
        for i in range(count)
    ]


def _ids(events: list[TaskEvent]) -> list[str]:
    return [e.id for e in events]


async def test_logged_event_round_trips_its_fields(events: BaseEventStorage) -> None:
    original = TaskEvent(
        task_id="t1",
        event_type=EventType.RETRY,
        timestamp=ms_now(),
        queue_name="reports",
        worker_id="worker-1",
        schedule_id="nightly",
        func=FUNC,
        attempt=2,
        details={"retry_at": "2024-05-06T07:08:09+00:00", "error_type": "ValueError"},
    )
    await events.log_event(original)

    assert await events.get_events(task_id="t1") == [original]


async def test_get_events_filters_by_task_id(events: BaseEventStorage) -> None:
    timeline = _timeline(ms_now(), 6)
    await events.log_events(timeline)

    found = await events.get_events(task_id="task-1")
    assert _ids(found) == [e.id for e in timeline if e.task_id == "task-1"]


async def test_get_events_filters_by_one_event_type(events: BaseEventStorage) -> None:
    timeline = _timeline(ms_now(), 6)
    await events.log_events(timeline)

    found = await events.get_events(event_type=EventType.EXECUTING)
    assert _ids(found) == [e.id for e in timeline if e.event_type is EventType.EXECUTING]


async def test_get_events_filters_by_event_type_given_as_a_string(
    events: BaseEventStorage,
) -> None:
    timeline = _timeline(ms_now(), 6)
    await events.log_events(timeline)

    found = await events.get_events(event_type="completed")
    assert _ids(found) == [e.id for e in timeline if e.event_type is EventType.COMPLETED]


async def test_get_events_filters_by_a_list_of_event_types(events: BaseEventStorage) -> None:
    timeline = _timeline(ms_now(), 6)
    await events.log_events(timeline)

    wanted = [EventType.ENQUEUED, EventType.COMPLETED]
    found = await events.get_events(event_type=wanted)
    assert _ids(found) == [e.id for e in timeline if e.event_type in wanted]


async def test_get_events_filters_by_queue(events: BaseEventStorage) -> None:
    timeline = _timeline(ms_now(), 6)
    await events.log_events(timeline)

    found = await events.get_events(queue="high")
    assert _ids(found) == [e.id for e in timeline if e.queue_name == "high"]


async def test_get_events_filters_by_schedule_id(events: BaseEventStorage) -> None:
    now = ms_now()
    scheduled = _event("t1", EventType.ENQUEUED, now, schedule_id="nightly")
    await events.log_events([scheduled, _event("t2", EventType.ENQUEUED, now)])

    assert _ids(await events.get_events(schedule_id="nightly")) == [scheduled.id]


async def test_get_events_combines_filters(events: BaseEventStorage) -> None:
    timeline = _timeline(ms_now(), 12)
    await events.log_events(timeline)

    found = await events.get_events(task_id="task-0", event_type=EventType.ENQUEUED)
    assert _ids(found) == [
        e.id for e in timeline if e.task_id == "task-0" and e.event_type is EventType.ENQUEUED
    ]


async def test_get_events_time_range_includes_start_and_excludes_end(
    events: BaseEventStorage,
) -> None:
    start = ms_now()
    timeline = _timeline(start, 5)
    await events.log_events(timeline)

    found = await events.get_events(
        start_time=start + timedelta(seconds=1), end_time=start + timedelta(seconds=3)
    )
    assert _ids(found) == _ids(timeline[1:3])


async def test_get_events_returns_oldest_first(events: BaseEventStorage) -> None:
    timeline = _timeline(ms_now(), 5)
    await events.log_events(list(reversed(timeline)))

    assert _ids(await events.get_events()) == _ids(timeline)


async def test_get_events_descending_returns_newest_first(events: BaseEventStorage) -> None:
    timeline = _timeline(ms_now(), 5)
    await events.log_events(timeline)

    found = await events.get_events(descending=True, limit=2)
    assert _ids(found) == _ids([timeline[4], timeline[3]])


async def test_get_events_applies_limit_and_offset(events: BaseEventStorage) -> None:
    timeline = _timeline(ms_now(), 6)
    await events.log_events(timeline)

    found = await events.get_events(limit=2, offset=3)
    assert _ids(found) == _ids(timeline[3:5])


async def test_cleanup_old_events_deletes_only_older_events_and_returns_the_count(
    events: BaseEventStorage,
) -> None:
    start = ms_now()
    timeline = _timeline(start, 4)
    await events.log_events(timeline)

    assert await events.cleanup_old_events(start + timedelta(seconds=2)) == 2

    assert _ids(await events.get_events()) == _ids(timeline[2:])


# -- events the task queue emits (through its event_logger) ------------------------------------


async def test_enqueue_emits_enqueued(queue: BaseTaskQueue) -> None:
    log = record_events(queue)

    task_id = await queue.enqueue(FUNC)

    assert log.types_for(task_id) == [EventType.ENQUEUED]


async def test_enqueue_of_an_existing_id_emits_nothing(queue: BaseTaskQueue) -> None:
    log = record_events(queue)

    await queue.enqueue(FUNC, task_id="once")
    await queue.enqueue(FUNC, task_id="once")

    assert log.types_for("once") == [EventType.ENQUEUED]


async def test_fail_with_retry_at_emits_retry(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC, max_retries=3)
    task = await claim(queue, lease=5)
    log = record_events(queue)

    await queue.fail(task.id, claim_token(task), error_type="ValueError", retry_at=ms_now())

    assert log.types_for(task.id) == [EventType.RETRY]


async def test_fail_without_retry_at_emits_dead(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC, max_retries=3)
    task = await claim(queue, lease=5)
    log = record_events(queue)

    await queue.fail(task.id, claim_token(task), error_type="ValueError")

    assert log.types_for(task.id) == [EventType.DEAD]


async def test_fail_with_retry_at_on_the_last_attempt_emits_dead(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC, max_retries=0)
    task = await claim(queue, lease=5)
    log = record_events(queue)

    await queue.fail(task.id, claim_token(task), error_type="ValueError", retry_at=ms_now())

    assert log.types_for(task.id) == [EventType.DEAD]


async def test_cancel_emits_cancelled(queue: BaseTaskQueue) -> None:
    task_id = await queue.enqueue(FUNC)
    log = record_events(queue)

    await queue.cancel(task_id)

    assert log.types_for(task_id) == [EventType.CANCELLED]


async def test_expiry_found_by_dequeue_emits_expired(queue: BaseTaskQueue) -> None:
    task_id = await queue.enqueue(FUNC, ttl=0.1)
    log = record_events(queue)
    await asyncio.sleep(0.2)

    await queue.dequeue()

    assert log.types_for(task_id) == [EventType.EXPIRED]


async def test_expiry_found_by_cleanup_emits_expired(queue: BaseTaskQueue) -> None:
    task_id = await queue.enqueue(FUNC, ttl=0.1)
    log = record_events(queue)
    await asyncio.sleep(0.2)

    await queue.cleanup()

    assert log.types_for(task_id) == [EventType.EXPIRED]


async def test_lease_expiry_emits_lease_expired_then_retry(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC, max_retries=3)
    task = await claim(queue, lease=0.2)
    log = record_events(queue)
    await asyncio.sleep(0.3)

    await queue.recover_expired()

    assert log.types_for(task.id) == [EventType.LEASE_EXPIRED, EventType.RETRY]


async def test_undecodable_task_emits_dead(queue: BaseTaskQueue) -> None:
    task_id = await queue.enqueue(FUNC, args=(Poison(),))
    log = record_events(queue)

    await queue.dequeue()

    assert log.types_for(task_id) == [EventType.DEAD]
