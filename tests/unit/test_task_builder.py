"""Specification of ``build_task`` and queue-name validation: bad input fails at enqueue time."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from omniq.config import get_settings, reload_settings
from omniq.exceptions import FunctionNotFound, QueueNameError
from omniq.models.task import Task
from omniq.queue.builder import build_task, validate_queue_name
from omniq.registry import registry


def module_level_function(a: int = 0, b: int = 0) -> int:
    return a + b


def close_to(moment: datetime, expected: datetime, tolerance: float = 5.0) -> bool:
    return abs((moment - expected).total_seconds()) < tolerance


# -- arguments --------------------------------------------------------------------------------


def test_func_args_dict_becomes_kwargs() -> None:
    task = build_task(module_level_function, func_args={"a": 1, "b": 2})

    assert task.args == ()
    assert task.kwargs == {"a": 1, "b": 2}


@pytest.mark.parametrize("func_args", [[1, 2], (1, 2)], ids=["list", "tuple"])
def test_func_args_sequence_becomes_args(func_args: Any) -> None:
    task = build_task(module_level_function, func_args=func_args)

    assert task.args == (1, 2)
    assert task.kwargs == {}


def test_args_and_kwargs_are_taken_as_given() -> None:
    task = build_task(module_level_function, args=[1], kwargs={"b": 2})

    assert task.args == (1,)
    assert task.kwargs == {"b": 2}


def test_func_args_dict_combines_with_args() -> None:
    task = build_task(module_level_function, func_args={"b": 2}, args=(1,))

    assert task.args == (1,)
    assert task.kwargs == {"b": 2}


def test_positional_arguments_in_both_func_args_and_args_are_refused() -> None:
    with pytest.raises(TypeError, match="args"):
        build_task(module_level_function, func_args=[1], args=(2,))


def test_a_keyword_given_in_both_func_args_and_kwargs_is_refused_naming_it() -> None:
    with pytest.raises(TypeError, match="'b'"):
        build_task(module_level_function, func_args={"b": 1}, kwargs={"b": 2})


@pytest.mark.parametrize("args", ["ab", b"ab", {"a": 1}], ids=["str", "bytes", "dict"])
def test_args_that_are_not_a_sequence_of_arguments_are_refused(args: Any) -> None:
    with pytest.raises(TypeError, match="args"):
        build_task(module_level_function, args=args)


def test_a_non_string_keyword_name_is_refused() -> None:
    with pytest.raises(TypeError, match="1"):
        build_task(module_level_function, func_args={1: "x"})


# -- when the task may run --------------------------------------------------------------------


@pytest.mark.parametrize(
    "run_in", [timedelta(minutes=10), 600, 600.0], ids=["timedelta", "int", "float"]
)
def test_run_in_sets_eta_that_far_in_the_future(run_in: Any) -> None:
    task = build_task(module_level_function, run_in=run_in)

    assert task.eta is not None
    assert close_to(task.eta, datetime.now(UTC) + timedelta(minutes=10))


def test_run_at_sets_eta() -> None:
    when = datetime(2030, 1, 1, 9, tzinfo=UTC)

    assert build_task(module_level_function, run_at=when).eta == when


def test_eta_sets_eta() -> None:
    when = datetime(2030, 1, 1, 9, tzinfo=UTC)

    assert build_task(module_level_function, eta=when).eta == when


def test_a_naive_run_at_is_taken_as_utc() -> None:
    task = build_task(module_level_function, run_at=datetime(2030, 1, 1, 9))

    assert task.eta == datetime(2030, 1, 1, 9, tzinfo=UTC)


def test_an_aware_run_at_is_converted_to_utc() -> None:
    task = build_task(
        module_level_function, run_at=datetime(2030, 1, 1, 9, tzinfo=timezone(timedelta(hours=3)))
    )

    assert task.eta == datetime(2030, 1, 1, 6, tzinfo=UTC)
    assert task.eta is not None
    assert task.eta.tzinfo is UTC


@pytest.mark.parametrize(
    "when",
    [
        {"run_at": datetime(2030, 1, 1, tzinfo=UTC), "run_in": 5},
        {"run_at": datetime(2030, 1, 1, tzinfo=UTC), "eta": datetime(2030, 1, 1, tzinfo=UTC)},
        {"run_in": 5, "eta": datetime(2030, 1, 1, tzinfo=UTC)},
    ],
    ids=["run_at+run_in", "run_at+eta", "run_in+eta"],
)
def test_giving_two_of_run_at_run_in_and_eta_is_refused(when: dict[str, Any]) -> None:
    with pytest.raises(TypeError, match="at most one of run_at, run_in and eta"):
        build_task(module_level_function, **when)


def test_a_negative_run_in_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="run_in"):
        build_task(module_level_function, run_in=-1)


def test_an_eta_that_is_not_a_datetime_is_refused_naming_eta() -> None:
    with pytest.raises(TypeError, match="eta"):
        build_task(module_level_function, eta="tomorrow")  # type: ignore[arg-type]


# -- TTL and timeouts -------------------------------------------------------------------------


@pytest.mark.parametrize("ttl", [timedelta(hours=1), 3600], ids=["timedelta", "seconds"])
def test_ttl_sets_expires_at(ttl: Any) -> None:
    task = build_task(module_level_function, ttl=ttl)

    assert task.expires_at is not None
    assert close_to(task.expires_at, datetime.now(UTC) + timedelta(hours=1))


def test_expires_at_is_taken_as_given() -> None:
    deadline = datetime(2030, 1, 1, tzinfo=UTC)

    assert build_task(module_level_function, expires_at=deadline).expires_at == deadline


def test_a_ttl_ending_before_the_eta_is_refused() -> None:
    with pytest.raises(ValueError, match="expire"):
        build_task(module_level_function, run_in=timedelta(hours=2), ttl=timedelta(hours=1))


def test_a_ttl_ending_after_the_eta_is_accepted() -> None:
    task = build_task(module_level_function, run_in=timedelta(hours=1), ttl=timedelta(hours=2))

    assert task.eta is not None
    assert task.expires_at is not None
    assert task.expires_at > task.eta


@pytest.mark.parametrize("name", ["ttl", "timeout", "result_ttl", "retry_delay"])
def test_a_negative_duration_is_refused_naming_it(name: str) -> None:
    options: dict[str, Any] = {name: -5}

    with pytest.raises(ValueError, match=name):
        build_task(module_level_function, **options)


@pytest.mark.parametrize("name", ["ttl", "timeout"])
def test_a_zero_ttl_or_timeout_is_refused_naming_it(name: str) -> None:
    options: dict[str, Any] = {name: 0}

    with pytest.raises(ValueError, match=name):
        build_task(module_level_function, **options)


def test_timeout_is_stored_in_seconds() -> None:
    assert build_task(module_level_function, timeout=timedelta(minutes=2)).timeout == 120.0


def test_result_ttl_is_stored_in_seconds() -> None:
    assert build_task(module_level_function, result_ttl=timedelta(hours=1)).result_ttl == 3600.0


# -- retries ----------------------------------------------------------------------------------


@pytest.mark.parametrize("max_retries", [0, 1, 10])
def test_max_retries_accepts_non_negative_ints(max_retries: int) -> None:
    assert build_task(module_level_function, max_retries=max_retries).max_retries == max_retries


def test_a_negative_max_retries_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        build_task(module_level_function, max_retries=-1)


@pytest.mark.parametrize("max_retries", [1.5, "3", True], ids=["float", "str", "bool"])
def test_a_max_retries_that_is_not_an_int_is_refused_naming_it(max_retries: Any) -> None:
    with pytest.raises(TypeError, match="max_retries"):
        build_task(module_level_function, max_retries=max_retries)


def test_retry_on_exception_types_are_stored_by_name() -> None:
    task = build_task(module_level_function, retry_on=[ValueError, "pkg.errors.Flaky"])

    assert task.retry_on == ("builtins.ValueError", "pkg.errors.Flaky")


# -- function references ----------------------------------------------------------------------


def test_an_unknown_function_name_is_refused_naming_it() -> None:
    with pytest.raises(FunctionNotFound, match="no_such_function"):
        build_task("no_such_function")


def test_an_import_path_to_a_missing_attribute_is_refused_naming_it() -> None:
    with pytest.raises(FunctionNotFound, match=r"os\.path:no_such_function"):
        build_task("os.path:no_such_function")


def test_an_import_path_string_resolves() -> None:
    task = build_task("os.path:join", args=("a", "b"))

    assert task.func == "os.path:join"
    assert task.func_obj is None


def test_a_module_level_function_is_stored_by_its_import_path_without_the_callable() -> None:
    task = build_task(module_level_function)

    assert task.func == f"{__name__}:module_level_function"
    assert task.func_obj is None
    assert registry.resolve(task.func) is module_level_function


def test_a_nested_function_keeps_its_callable() -> None:
    def nested() -> int:
        return 1

    task = build_task(nested)

    assert task.func == f"{__name__}:{nested.__qualname__}"
    assert task.func_obj is nested


def test_a_lambda_keeps_its_callable() -> None:
    func = lambda: 1  # noqa: E731

    assert build_task(func).func_obj is func


# -- queue names ------------------------------------------------------------------------------

VALID_QUEUE_NAMES = ["default", "high", "emails.v2", "tenant-1_jobs", "A", "0", "a" * 100]
INVALID_QUEUE_NAMES = [
    pytest.param("../etc/passwd", id="path-traversal"),
    pytest.param("..", id="dot-dot"),
    pytest.param("a/b", id="slash"),
    pytest.param("a\\b", id="backslash"),
    pytest.param("q'; DROP TABLE tasks;--", id="sql"),
    pytest.param("q:1", id="redis-colon"),
    pytest.param("q*", id="redis-glob"),
    pytest.param("{q}", id="redis-hash-tag"),
    pytest.param("my queue", id="space"),
    pytest.param("", id="empty"),
    pytest.param("a" * 101, id="too-long"),
    pytest.param(".hidden", id="leading-dot"),
    pytest.param("-x", id="leading-dash"),
    pytest.param("default\n", id="trailing-newline"),
    pytest.param("dé", id="non-ascii"),
    pytest.param(None, id="none"),
    pytest.param(123, id="int"),
]


@pytest.mark.parametrize("name", VALID_QUEUE_NAMES)
def test_a_valid_queue_name_is_accepted(name: str) -> None:
    assert validate_queue_name(name) == name


@pytest.mark.parametrize("name", INVALID_QUEUE_NAMES)
def test_an_invalid_queue_name_is_refused_naming_it(name: Any) -> None:
    with pytest.raises(QueueNameError, match=re.escape(repr(name))):
        validate_queue_name(name)


@pytest.mark.parametrize("name", [p for p in INVALID_QUEUE_NAMES if p.id != "none"])
def test_build_task_refuses_an_invalid_queue_name(name: Any) -> None:
    # (queue_name=None means "not given"; the empty string does not)
    with pytest.raises(QueueNameError, match=re.escape(repr(name))):
        build_task(module_level_function, queue_name=name)


def test_build_task_uses_the_given_queue_name() -> None:
    assert build_task(module_level_function, queue_name="emails").queue_name == "emails"


def test_build_task_uses_the_default_queue_when_none_is_given() -> None:
    assert build_task(module_level_function).queue_name == "default"


# -- defaults from settings -------------------------------------------------------------------


def test_defaults_come_from_the_settings() -> None:
    settings = get_settings()

    task = build_task(module_level_function)

    assert task.max_retries == settings.RETRY_ATTEMPTS
    assert task.retry_delay == settings.RETRY_DELAY
    assert task.timeout == settings.TASK_TIMEOUT
    assert task.result_ttl == settings.RESULT_TTL
    assert task.priority == 0
    assert task.eta is None


@pytest.fixture
def overridden_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("OMNIQ_RETRY_ATTEMPTS", "7")
    monkeypatch.setenv("OMNIQ_RETRY_DELAY", "2.5")
    monkeypatch.setenv("OMNIQ_TASK_TIMEOUT", "30")
    monkeypatch.setenv("OMNIQ_TASK_TTL", "600")
    monkeypatch.setenv("OMNIQ_RESULT_TTL", "60")
    reload_settings()
    yield
    monkeypatch.undo()
    reload_settings()


@pytest.mark.usefixtures("overridden_settings")
def test_defaults_follow_omniq_environment_overrides() -> None:
    task = build_task(module_level_function)

    assert task.max_retries == 7
    assert task.retry_delay == 2.5
    assert task.timeout == 30.0
    assert task.result_ttl == 60.0
    assert task.expires_at is not None
    assert close_to(task.expires_at, datetime.now(UTC) + timedelta(seconds=600))


@pytest.mark.usefixtures("overridden_settings")
def test_explicit_arguments_win_over_settings() -> None:
    task = build_task(module_level_function, max_retries=0, timeout=5, ttl=None, result_ttl=None)

    assert task.max_retries == 0
    assert task.timeout == 5.0
    assert task.expires_at is None
    assert task.result_ttl is None


def test_registered_options_sit_between_explicit_arguments_and_settings() -> None:
    task = build_task(module_level_function, defaults={"max_retries": 9, "priority": 4}, priority=1)

    assert task.max_retries == 9
    assert task.priority == 1


# -- identity ---------------------------------------------------------------------------------


def test_task_id_is_taken_as_given() -> None:
    assert build_task(module_level_function, task_id="order-42").id == "order-42"


@pytest.mark.parametrize("task_id", ["", "x" * 201])
def test_a_bad_task_id_is_refused(task_id: str) -> None:
    with pytest.raises(ValueError, match="task_id"):
        build_task(module_level_function, task_id=task_id)


def test_build_task_returns_a_task() -> None:
    assert isinstance(build_task(module_level_function), Task)


# -- what is resolved once per function --------------------------------------------------------


def test_a_re_registration_changes_the_defaults_of_the_next_task() -> None:
    name = "tests.builder.reregistered"
    registry.register(name, module_level_function, {"max_retries": 2, "queue_name": "one"})
    first = build_task(name)
    registry.register(name, module_level_function, {"max_retries": 5, "queue_name": "two"})
    second = build_task(name)

    assert (first.max_retries, first.queue_name) == (2, "one")
    assert (second.max_retries, second.queue_name) == (5, "two")


@pytest.mark.usefixtures("overridden_settings")
def test_reloaded_settings_reach_a_function_enqueued_before_the_reload() -> None:
    before = build_task(module_level_function)
    get_settings()
    reload_settings()  # back to the environment of the fixture: the same values
    assert build_task(module_level_function).max_retries == before.max_retries == 7


def test_settings_reloaded_between_two_tasks_of_one_function_reach_the_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = build_task(module_level_function)
    monkeypatch.setenv("OMNIQ_RETRY_ATTEMPTS", "11")
    reload_settings()
    try:
        second = build_task(module_level_function)
    finally:
        monkeypatch.undo()
        reload_settings()

    assert first.max_retries == get_settings().RETRY_ATTEMPTS
    assert second.max_retries == 11


def test_a_bad_registered_default_is_refused_only_when_the_call_does_not_override_it() -> None:
    name = "tests.builder.bad_default"
    registry.register(name, module_level_function, {"max_retries": -1})

    assert build_task(name, max_retries=3).max_retries == 3
    with pytest.raises(ValueError, match="max_retries"):
        build_task(name)
    with pytest.raises(ValueError, match="max_retries"):
        build_task(name)  # the second time too: an invalid default is never cached as valid


def test_tasks_of_one_function_share_its_defaults_but_not_their_own_values() -> None:
    first = build_task(module_level_function, args=(1,), metadata={"k": 1})
    second = build_task(module_level_function, kwargs={"a": 2}, priority=3, queue_name="other")

    assert first.id != second.id
    assert (first.args, first.kwargs, first.metadata) == ((1,), {}, {"k": 1})
    assert (second.args, second.kwargs, second.metadata) == ((), {"a": 2}, {})
    assert (first.priority, first.queue_name) == (0, "default")
    assert (second.priority, second.queue_name) == (3, "other")
    assert first.created_at <= second.created_at


def test_a_per_call_queue_or_priority_is_still_checked_on_the_fast_path() -> None:
    build_task(module_level_function)  # its defaults resolved and kept
    with pytest.raises(QueueNameError, match="bad name"):
        build_task(module_level_function, queue_name="bad name")
    with pytest.raises(ValueError, match="priority"):
        build_task(module_level_function, priority=2**40)


def test_a_lambda_keeps_its_callable_each_time() -> None:
    def make() -> Any:
        return lambda: 1

    first, second = make(), make()
    assert build_task(first).func_obj is first
    assert build_task(second).func_obj is second


def test_a_script_function_whose_name_is_bound_again_travels_by_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    main = sys.modules["__main__"]

    def first() -> int:
        return 1

    def second() -> int:
        return 2

    for func in (first, second):
        func.__module__, func.__qualname__ = "__main__", "omniq_builder_rebound"
    monkeypatch.setattr(main, "omniq_builder_rebound", first, raising=False)
    assert build_task(first).func_obj is None  # found in the script by its name
    monkeypatch.setattr(main, "omniq_builder_rebound", second)

    task = build_task(first)  # its name now leads to another function

    assert task.func_obj is first
