"""Schedule storage: save, read, pause/resume, delete, find due ones, advance exactly once."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

from omniq.exceptions import QueueNameError, TaskNotFound
from omniq.models.schedule import Schedule, ScheduleState
from omniq.storage.base import BaseTaskQueue

from .helpers import FUNC, ms_now


def _schedule(next_run_at: datetime | None = None, **fields: Any) -> Schedule:
    return Schedule(func=FUNC, interval=60, next_run_at=next_run_at, **fields)


async def test_save_returns_the_schedule_id(queue: BaseTaskQueue) -> None:
    schedule = _schedule(ms_now())

    assert await queue.save_schedule(schedule) == schedule.id


async def test_saved_schedule_round_trips(queue: BaseTaskQueue) -> None:
    schedule = Schedule(
        func=FUNC,
        args=(1, 2),
        kwargs={"scale": 3},
        cron="0 3 * * *",
        timezone="Europe/Paris",
        queue_name="reports",
        next_run_at=ms_now(),
        task_options={"priority": 5, "max_retries": 2},
        metadata={"owner": "ops"},
    )
    await queue.save_schedule(schedule)

    assert await queue.get_schedule(schedule.id) == schedule


async def test_save_again_replaces_the_schedule(queue: BaseTaskQueue) -> None:
    schedule = _schedule(ms_now())
    await queue.save_schedule(schedule)
    schedule.interval = 120
    await queue.save_schedule(schedule)

    stored = await queue.get_schedule(schedule.id)
    assert stored is not None
    assert stored.interval == 120
    assert len(await queue.list_schedules()) == 1


async def test_get_of_an_unknown_schedule_returns_none(queue: BaseTaskQueue) -> None:
    assert await queue.get_schedule("no-such-schedule") is None


async def test_save_to_a_queue_not_in_queues_raises(tiered_queue: BaseTaskQueue) -> None:
    with pytest.raises(QueueNameError):
        await tiered_queue.save_schedule(_schedule(ms_now(), queue_name="urgent"))

    assert await tiered_queue.list_schedules() == []


async def test_list_schedules_lists_every_schedule(queue: BaseTaskQueue) -> None:
    saved = [_schedule(ms_now()) for _ in range(3)]
    for schedule in saved:
        await queue.save_schedule(schedule)

    assert {s.id for s in await queue.list_schedules()} == {s.id for s in saved}


async def test_list_schedules_filters_by_state(queue: BaseTaskQueue) -> None:
    active, paused = _schedule(ms_now()), _schedule(ms_now())
    await queue.save_schedule(active)
    await queue.save_schedule(paused)
    await queue.pause_schedule(paused.id)

    assert [s.id for s in await queue.list_schedules(ScheduleState.PAUSED)] == [paused.id]
    assert [s.id for s in await queue.list_schedules("active")] == [active.id]


async def test_pause_schedule_pauses_it(queue: BaseTaskQueue) -> None:
    schedule = _schedule(ms_now())
    await queue.save_schedule(schedule)

    assert await queue.pause_schedule(schedule.id) is True

    stored = await queue.get_schedule(schedule.id)
    assert stored is not None
    assert stored.state is ScheduleState.PAUSED


async def test_pausing_twice_returns_false(queue: BaseTaskQueue) -> None:
    schedule = _schedule(ms_now())
    await queue.save_schedule(schedule)
    await queue.pause_schedule(schedule.id)

    assert await queue.pause_schedule(schedule.id) is False


async def test_resume_schedule_makes_it_active_again(queue: BaseTaskQueue) -> None:
    schedule = _schedule(ms_now())
    await queue.save_schedule(schedule)
    await queue.pause_schedule(schedule.id)

    assert await queue.resume_schedule(schedule.id) is True

    stored = await queue.get_schedule(schedule.id)
    assert stored is not None
    assert stored.state is ScheduleState.ACTIVE


async def test_resuming_an_active_schedule_returns_false(queue: BaseTaskQueue) -> None:
    schedule = _schedule(ms_now())
    await queue.save_schedule(schedule)

    assert await queue.resume_schedule(schedule.id) is False


async def test_pause_of_an_unknown_schedule_raises_task_not_found(queue: BaseTaskQueue) -> None:
    with pytest.raises(TaskNotFound):
        await queue.pause_schedule("no-such-schedule")


async def test_delete_schedule_removes_it(queue: BaseTaskQueue) -> None:
    schedule = _schedule(ms_now())
    await queue.save_schedule(schedule)

    assert await queue.delete_schedule(schedule.id) is True
    assert await queue.get_schedule(schedule.id) is None
    assert await queue.delete_schedule(schedule.id) is False


async def test_claim_due_schedules_returns_active_due_schedules_only(
    queue: BaseTaskQueue,
) -> None:
    now = ms_now()
    due = _schedule(now - timedelta(seconds=1))
    due_now = _schedule(now)
    later = _schedule(now + timedelta(seconds=60))
    paused = _schedule(now - timedelta(seconds=1))
    never = _schedule(None)
    for schedule in (due, due_now, later, paused, never):
        await queue.save_schedule(schedule)
    await queue.pause_schedule(paused.id)

    found = await queue.claim_due_schedules(now)

    assert {s.id for s in found} == {due.id, due_now.id}


async def test_claim_due_schedules_defaults_to_now(queue: BaseTaskQueue) -> None:
    due = _schedule(ms_now() - timedelta(seconds=1))
    await queue.save_schedule(due)
    await queue.save_schedule(_schedule(ms_now() + timedelta(seconds=60)))

    assert [s.id for s in await queue.claim_due_schedules()] == [due.id]


async def test_advance_schedule_with_the_expected_next_run_wins(queue: BaseTaskQueue) -> None:
    current = ms_now()
    schedule = _schedule(current)
    await queue.save_schedule(schedule)
    following = current + timedelta(seconds=60)

    won = await queue.advance_schedule(
        schedule.id, current, {"next_run_at": following, "run_count": 1, "last_run_at": current}
    )

    assert won is True
    stored = await queue.get_schedule(schedule.id)
    assert stored is not None
    assert stored.next_run_at == following
    assert stored.run_count == 1
    assert stored.last_run_at == current


async def test_advance_schedule_with_a_stale_next_run_loses(queue: BaseTaskQueue) -> None:
    current = ms_now()
    schedule = _schedule(current)
    await queue.save_schedule(schedule)

    won = await queue.advance_schedule(
        schedule.id, current - timedelta(seconds=60), {"next_run_at": current + timedelta(hours=1)}
    )

    assert won is False
    stored = await queue.get_schedule(schedule.id)
    assert stored is not None
    assert stored.next_run_at == current


async def test_of_two_concurrent_advances_exactly_one_wins(queue: BaseTaskQueue) -> None:
    current = ms_now()
    schedule = _schedule(current)
    await queue.save_schedule(schedule)

    outcomes = await asyncio.gather(
        *(
            queue.advance_schedule(
                schedule.id,
                current,
                {"next_run_at": current + timedelta(seconds=60), "run_count": 1},
            )
            for _ in range(2)
        )
    )

    assert sorted(outcomes) == [False, True]
    stored = await queue.get_schedule(schedule.id)
    assert stored is not None
    assert stored.run_count == 1
