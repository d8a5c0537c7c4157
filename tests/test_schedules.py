"""Schedules through the façade: timings, pause/resume, exactly-once occurrences, DST."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from omniq import AsyncOmniQ, EventType, OmniQ
from omniq.backend import create_backend
from omniq.models import Schedule, ScheduleState
from omniq.queue.scheduler import AsyncScheduler, next_occurrence
from omniq.storage.memory import AsyncMemoryEventStorage, AsyncMemoryQueue
from tests import tasks_fixture as tf


async def test_seed_003_schedule_example_then_latest_result() -> None:
    async def async_task(name):  # type: ignore[no-untyped-def]
        return name

    async with AsyncOmniQ(task_queue=AsyncMemoryQueue(queues=["low", "medium", "high"])) as oq:
        await oq.start_worker()
        schedule_id = await oq.schedule(
            func=async_task,
            func_args=dict(name="Tom"),
            interval=timedelta(seconds=0.2),
            queue_name="low",
        )
        latest_result = None
        for _ in range(100):
            latest_result = await oq.get_result(schedule_id=schedule_id, kind="latest")
            if latest_result is not None:
                break
            await asyncio.sleep(0.05)
        assert latest_result == "Tom"


async def test_interval_schedule_runs_repeatedly_and_records_its_last_run() -> None:
    async with AsyncOmniQ() as oq:
        sid = await oq.schedule(tf.record, args=("tick",), interval=0.1)
        scheduler = AsyncScheduler(oq.task_queue)
        first = await scheduler.tick(datetime.now(UTC) + timedelta(seconds=0.15))
        second = await scheduler.tick(datetime.now(UTC) + timedelta(seconds=0.35))
        assert len(first) == 1
        assert len(second) == 1
        assert first != second
        schedule = await oq.get_schedule(sid)
        assert schedule is not None
        assert schedule.run_count == 2
        assert schedule.last_task_id == second[0]


async def test_a_paused_schedule_waits_for_resume_and_every_change_emits_an_event() -> None:
    async with AsyncOmniQ(event_store=AsyncMemoryEventStorage()) as oq:
        sid = await oq.schedule(tf.record, args=("paused",), interval=0.05)
        assert await oq.pause_schedule(sid) is True
        scheduler = AsyncScheduler(oq.task_queue)
        assert await scheduler.tick(datetime.now(UTC) + timedelta(seconds=1)) == []
        assert await oq.resume_schedule(sid) is True
        assert len(await scheduler.tick(datetime.now(UTC) + timedelta(seconds=1))) == 1
        events = await oq.get_events(sid)
        types = [e.event_type for e in events]
        assert types == [
            EventType.SCHEDULED,
            EventType.SCHEDULE_PAUSED,
            EventType.SCHEDULE_RESUMED,
        ]
        assert events[0].details["interval"] == 0.05
        schedules = await oq.list_schedules(ScheduleState.ACTIVE)
        assert [s.id for s in schedules] == [sid]


async def test_one_shot_schedule_runs_once_then_finishes() -> None:
    async with AsyncOmniQ() as oq:
        sid = await oq.schedule(tf.record, args=("once",), run_in=0.01)
        scheduler = AsyncScheduler(oq.task_queue)
        assert len(await scheduler.tick(datetime.now(UTC) + timedelta(seconds=1))) == 1
        assert await scheduler.tick(datetime.now(UTC) + timedelta(seconds=2)) == []
        schedule = await oq.get_schedule(sid)
        assert schedule is not None
        assert schedule.state is ScheduleState.FINISHED


async def test_five_concurrent_scheduler_loops_enqueue_each_occurrence_exactly_once() -> None:
    async with AsyncOmniQ() as oq:
        start = datetime.now(UTC)
        await oq.schedule(tf.record, args=("x",), interval=1, start_at=start)
        schedulers = [AsyncScheduler(oq.task_queue) for _ in range(5)]
        won: list[str] = []
        for step in range(20):
            now = start + timedelta(seconds=step, milliseconds=500)
            results = await asyncio.gather(*(s.tick(now) for s in schedulers))
            won += [tid for ids in results for tid in ids]
        assert len(won) == len(set(won)) == 20
        assert await oq.get_queue_size() == 20


async def test_missed_occurrences_run_once_then_the_schedule_continues() -> None:
    async with AsyncOmniQ() as oq:
        start = datetime.now(UTC)
        sid = await oq.schedule(tf.record, args=("late",), interval=1, start_at=start)
        scheduler = AsyncScheduler(oq.task_queue)
        later = start + timedelta(seconds=10.5)  # ten occurrences missed while nothing ran
        assert len(await scheduler.tick(later)) == 1
        assert await scheduler.tick(later) == []
        schedule = await oq.get_schedule(sid)
        assert schedule is not None
        assert schedule.next_run_at == start + timedelta(seconds=11)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"cron": "61 * * * *"}, "61 * * * *"),
        ({"interval": 0}, "0"),
        ({"interval": -5}, "-5"),
        ({"cron": "*/5 * * * *", "timezone": "Mars/Olympus"}, "Mars/Olympus"),
    ],
)
async def test_bad_timing_is_refused_at_schedule_naming_it(
    options: dict[str, object], named: str
) -> None:
    async with AsyncOmniQ() as oq:
        with pytest.raises(ValueError, match=named.replace("*", r"\*")):
            await oq.schedule(tf.record, args=("x",), **options)  # type: ignore[arg-type]
        assert await oq.list_schedules() == []


def _cron(expr: str, tz: str) -> Schedule:
    return Schedule(func="tests.tasks_fixture:record", cron=expr, timezone=tz)


def test_daily_0230_runs_once_on_a_spring_forward_day() -> None:
    schedule = _cron("30 2 * * *", "Europe/Berlin")
    berlin = ZoneInfo("Europe/Berlin")
    first = next_occurrence(schedule, datetime(2026, 3, 28, 12, tzinfo=berlin).astimezone(UTC))
    assert first is not None
    second = next_occurrence(schedule, first)
    assert second is not None
    assert second.astimezone(berlin).date().isoformat() == "2026-03-30"
    assert second.astimezone(berlin).hour == 2
    # on 2026-03-29 02:30 does not exist: it runs once, at 03:00
    first_local = first.astimezone(berlin)
    assert (first_local.date().isoformat(), first_local.hour) == ("2026-03-29", 3)


def test_daily_0230_runs_once_on_a_fall_back_day() -> None:
    schedule = _cron("30 2 * * *", "Europe/Berlin")
    berlin = ZoneInfo("Europe/Berlin")
    first = next_occurrence(schedule, datetime(2026, 10, 24, 12, tzinfo=berlin).astimezone(UTC))
    assert first is not None
    second = next_occurrence(schedule, first)
    assert second is not None
    assert first.astimezone(berlin).date().isoformat() == "2026-10-25"
    assert second.astimezone(berlin).date().isoformat() == "2026-10-26"


def test_max_runs_and_end_at_end_a_schedule() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    capped = Schedule(func="m:f", interval=60, start_at=start, max_runs=2, run_count=2)
    assert next_occurrence(capped, start) is None
    ending = Schedule(func="m:f", interval=60, start_at=start, end_at=start + timedelta(seconds=90))
    assert next_occurrence(ending, start + timedelta(seconds=61)) is None


def test_five_scheduler_processes_enqueue_every_occurrence_exactly_once(tmp_path: Path) -> None:
    """Five ``omniq scheduler`` processes on one database for a few seconds: the tasks enqueued
    are exactly the schedule's occurrences, none missing, none twice."""
    url = f"sqlite:///{tmp_path / 'sched.db'}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]),
    }
    with OmniQ.from_backend(create_backend(url=url)) as oq:
        command = [sys.executable, "-m", "omniq", "scheduler", "--url", url]
        logs = [tmp_path / f"loop-{i}.log" for i in range(5)]
        loops = [
            subprocess.Popen(command, env=env, stderr=log.open("w"), stdout=subprocess.DEVNULL)
            for log in logs
        ]
        # every loop announces itself once it serves; the schedule starts after that, so a slow
        # start-up on a busy machine cannot eat occurrences
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(
            "omniq scheduler" in log.read_text() for log in logs
        ):
            time.sleep(0.1)
        start = datetime.now(UTC) + timedelta(seconds=0.5)
        # RUN_ALL: a loop that stalls on a busy machine catches up every occurrence, so "none
        # missing" holds whatever the load (RUN_ONCE would rightly collapse them)
        sid = oq.schedule(
            tf.record, args=("tick",), interval=0.25, start_at=start, missed_policy="run_all"
        )
        try:
            # until a dozen occurrences went out (bounded): a busy machine starts the loops late,
            # and the test is about exactly-once, not about start-up speed
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                current = oq.get_schedule(sid)
                if current is not None and current.run_count >= 12:
                    break
                time.sleep(0.2)
        finally:
            for loop in loops:
                loop.send_signal(signal.SIGTERM)
            codes = [loop.wait(timeout=30) for loop in loops]
        assert codes == [0] * 5
        tasks = oq.list_tasks(limit=10_000)
        schedule = oq.get_schedule(sid)
    occurrences = sorted(datetime.fromisoformat(t.metadata["occurrence"]) for t in tasks)
    assert len(occurrences) >= 10
    assert len(set(occurrences)) == len(occurrences)
    assert occurrences[0] == start
    steps = {b - a for a, b in itertools.pairwise(occurrences)}
    assert steps == {timedelta(seconds=0.25)}  # none missing in between
    assert schedule is not None
    assert schedule.run_count == len(occurrences)
