"""Specification of the data models: Task, TaskResult, TaskEvent, Schedule and their import paths."""

from __future__ import annotations

import importlib
import os
from datetime import UTC, datetime, timedelta, timezone

import pytest

from omniq._ids import new_id
from omniq.models.event import EventType, TaskEvent
from omniq.models.result import ResultStatus, TaskResult
from omniq.models.schedule import Schedule
from omniq.models.task import Task, TaskStatus
from omniq.serialization import Serializer

PLUS_TWO = timezone(timedelta(hours=2))


def module_level_function(x: int) -> int:
    return x


# -- Task -------------------------------------------------------------------------------------


def test_task_accepts_the_seed_001_form() -> None:
    task = Task(func="my_function", args=(1, 2, 3), kwargs={"key": "value"}, queue_name="default")

    assert task.func == "my_function"
    assert task.args == (1, 2, 3)
    assert task.kwargs == {"key": "value"}
    assert task.queue_name == "default"
    assert task.status is TaskStatus.PENDING
    assert task.attempts == 0
    assert task.created_at.tzinfo is UTC


def test_task_args_given_as_a_list_become_a_tuple() -> None:
    assert Task(func="f", args=[1, 2]).args == (1, 2)  # type: ignore[arg-type]


def test_task_ids_are_unique() -> None:
    ids = [Task(func="f").id for _ in range(10_000)]

    assert len(set(ids)) == len(ids)


def test_task_ids_sort_in_creation_order() -> None:
    ids = [Task(func="f").id for _ in range(10_000)]

    assert sorted(ids) == ids


def test_new_id_is_a_uuid7_string() -> None:
    value = new_id()

    assert len(value) == 36
    assert value[14] == "7"  # version nibble
    assert value[19] in "89ab"  # RFC 9562 variant


def test_ids_made_in_a_forked_child_differ_from_the_parent_s() -> None:
    new_id()  # the parent holds random bits read ahead
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its ids, made in the same millisecond as the parent's
        os.close(reader)
        os.write(writer, "\n".join(new_id() for _ in range(50)).encode())
        os._exit(0)
    os.close(writer)
    parent = {new_id() for _ in range(50)}
    with os.fdopen(reader) as pipe:
        child = set(pipe.read().splitlines())
    os.waitpid(pid, 0)

    assert len(child) == 50
    assert not parent & child
    assert {value[19:] for value in parent}.isdisjoint(value[19:] for value in child)


def test_task_takes_naive_eta_and_expires_at_as_utc() -> None:
    naive = datetime(2030, 1, 1, 12, 0)

    task = Task(func="f", eta=naive, expires_at=naive + timedelta(hours=1))

    assert task.eta == datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    assert task.eta is not None
    assert task.eta.tzinfo is UTC
    assert task.expires_at == datetime(2030, 1, 1, 13, 0, tzinfo=UTC)


def test_task_converts_aware_datetimes_to_utc() -> None:
    task = Task(func="f", eta=datetime(2030, 1, 1, 12, 0, tzinfo=PLUS_TWO))

    assert task.eta is not None
    assert task.eta.tzinfo is UTC
    assert task.eta.hour == 10


def test_task_with_an_importable_callable_records_only_its_reference() -> None:
    task = Task(func=module_level_function)  # type: ignore[arg-type]

    assert task.func == f"{__name__}:module_level_function"
    assert task.func_obj is None  # travels by reference (msgpack), never as a dill blob
    assert Serializer(local=False).format_of(Serializer(local=False).encode_task(task)) == "msgpack"


def test_task_with_a_nested_callable_names_it_by_its_qualname() -> None:
    def inner() -> None:
        pass

    task = Task(func=inner)  # type: ignore[arg-type]

    assert task.func == f"{__name__}:{inner.__qualname__}"
    assert "<locals>" in task.func
    assert task.func_obj is inner


def test_task_rejects_a_func_that_is_neither_a_name_nor_a_callable() -> None:
    with pytest.raises(TypeError, match="42"):
        Task(func=42)  # type: ignore[arg-type]


def test_task_rejects_an_empty_func_name() -> None:
    with pytest.raises(ValueError, match="func"):
        Task(func="")


def test_task_max_attempts_is_one_more_than_max_retries() -> None:
    assert Task(func="f", max_retries=3).max_attempts == 4


def test_task_is_expired_once_expires_at_has_passed() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    task = Task(func="f", expires_at=now)

    assert task.is_expired(now)
    assert not task.is_expired(now - timedelta(seconds=1))


# -- TaskResult -------------------------------------------------------------------------------


def test_task_result_accepts_the_seed_001_form_and_ttl_sets_expires_at() -> None:
    result = TaskResult(
        task_id="task-123",
        status=ResultStatus.SUCCESS,
        result={"output": "Hello, World!"},
        ttl=timedelta(hours=24),
    )

    assert result.result == {"output": "Hello, World!"}
    assert result.success
    assert result.expires_at == result.finished_at + timedelta(hours=24)


def test_task_result_ttl_in_seconds_sets_expires_at() -> None:
    result = TaskResult(task_id="t", ttl=60)  # type: ignore[arg-type]

    assert result.ttl == timedelta(seconds=60)
    assert result.expires_at == result.finished_at + timedelta(seconds=60)


def test_task_result_without_ttl_never_expires() -> None:
    result = TaskResult(task_id="t")

    assert result.expires_at is None
    assert not result.is_expired()


def test_task_result_rejects_a_negative_ttl_naming_it() -> None:
    with pytest.raises(ValueError, match="ttl"):
        TaskResult(task_id="t", ttl=timedelta(seconds=-1))


def test_result_status_failure_is_an_alias_of_error() -> None:
    assert ResultStatus.FAILURE is ResultStatus.ERROR  # type: ignore[comparison-overlap]


# -- TaskEvent --------------------------------------------------------------------------------


def test_event_type_complete_is_an_alias_of_completed() -> None:
    assert EventType.COMPLETE is EventType.COMPLETED  # type: ignore[comparison-overlap]


def test_task_event_accepts_the_seed_001_form() -> None:
    event = TaskEvent(
        task_id="task-123",
        event_type=EventType.COMPLETED,
        details={"duration": 1.5, "worker": "worker-001"},
    )

    assert event.event_type is EventType.COMPLETED
    assert event.details == {"duration": 1.5, "worker": "worker-001"}
    assert event.timestamp.tzinfo is UTC
    assert event.id


def test_task_event_takes_a_naive_timestamp_as_utc() -> None:
    event = TaskEvent(task_id="t", event_type=EventType.ERROR, timestamp=datetime(2030, 1, 1))

    assert event.timestamp == datetime(2030, 1, 1, tzinfo=UTC)


# -- Schedule ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "timing",
    [{"cron": "*/5 * * * *"}, {"interval": 30.0}, {"run_at": datetime(2030, 1, 1, tzinfo=UTC)}],
)
def test_schedule_accepts_exactly_one_timing(timing: dict[str, object]) -> None:
    schedule = Schedule(func="f", **timing)  # type: ignore[arg-type]

    assert schedule.is_active


def test_schedule_without_any_timing_is_rejected() -> None:
    with pytest.raises(ValueError, match="exactly one of cron, interval or run_at"):
        Schedule(func="f")


@pytest.mark.parametrize(
    "timing",
    [
        {"cron": "* * * * *", "interval": 5.0},
        {"interval": 5.0, "run_at": datetime(2030, 1, 1, tzinfo=UTC)},
        {"cron": "* * * * *", "run_at": datetime(2030, 1, 1, tzinfo=UTC)},
    ],
)
def test_schedule_with_two_timings_is_rejected(timing: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="exactly one of cron, interval or run_at"):
        Schedule(func="f", **timing)  # type: ignore[arg-type]


@pytest.mark.parametrize("interval", [0, 0.0, -5.0])
def test_schedule_rejects_a_non_positive_interval_naming_it(interval: float) -> None:
    with pytest.raises(ValueError, match="interval") as excinfo:
        Schedule(func="f", interval=interval)

    assert repr(interval) in str(excinfo.value)


def test_schedule_takes_a_naive_run_at_as_utc() -> None:
    schedule = Schedule(func="f", run_at=datetime(2030, 1, 1, 8))

    assert schedule.run_at == datetime(2030, 1, 1, 8, tzinfo=UTC)


def test_schedule_with_an_importable_callable_records_only_its_reference() -> None:
    schedule = Schedule(func=module_level_function, interval=1.0)  # type: ignore[arg-type]

    assert schedule.func == f"{__name__}:module_level_function"
    assert schedule.func_obj is None


def test_schedule_with_a_lambda_keeps_the_callable() -> None:
    func = lambda: 1  # noqa: E731

    schedule = Schedule(func=func, interval=1.0)  # type: ignore[arg-type]

    assert "<lambda>" in schedule.func
    assert schedule.func_obj is func


# -- import paths -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("omniq.models.task", ["Task", "TaskStatus"]),
        ("omniq.models.result", ["TaskResult", "ResultStatus"]),
        ("omniq.models.event", ["TaskEvent", "EventType"]),
        ("omniq.models.config", ["ConfigStruct", "TaskQueueConfig", "OmniQConfig"]),
        (
            "omniq.models",
            [
                "Task",
                "TaskStatus",
                "TaskResult",
                "ResultStatus",
                "TaskEvent",
                "EventType",
                "Schedule",
                "TaskQueueConfig",
                "OmniQConfig",
            ],
        ),
    ],
)
def test_models_are_importable_from_their_documented_paths(module: str, names: list[str]) -> None:
    imported = importlib.import_module(module)

    for name in names:
        assert hasattr(imported, name), f"{module} has no {name}"
