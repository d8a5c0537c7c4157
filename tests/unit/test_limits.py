"""One set of limits, checked at enqueue: each bad value is refused with a ValueError naming the
argument and the range (omniq.models.task), before any backend sees it."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from omniq.models.task import Task, check_task
from omniq.queue.builder import build_task

FUNC = "tests.tasks_fixture:add"

BAD: list[tuple[str, Any, str]] = [
    *[
        (name, value, name)
        for name in ("run_in", "timeout", "ttl", "retry_delay", "result_ttl", "retry_max_delay")
        for value in (math.nan, math.inf, -math.inf, 1e300, 10**400, timedelta.max)
    ],
    ("timeout", 0, "above 0"),
    ("ttl", 0.0, "above 0"),
    ("retry_delay", -1, "from 0 up to 1,576,800,000 (18,250 days)"),
    ("priority", 2**63, "-2147483648 and 2147483647"),
    ("priority", -(2**31) - 1, "-2147483648 and 2147483647"),
    ("max_retries", 2**63, "between 0 and 1000000"),
    ("max_retries", -1, "between 0 and 1000000"),
    ("retry_backoff", math.nan, "retry_backoff"),
    ("retry_backoff", 1e9, "retry_backoff"),
    ("run_at", datetime(1, 1, 1, tzinfo=UTC), "1900-01-01"),
    ("run_at", datetime(9999, 12, 31), "2100-01-01"),
    ("eta", datetime(1899, 12, 31, 23, 59, tzinfo=UTC), "1900-01-01"),
    ("expires_at", datetime(9999, 1, 1, tzinfo=UTC), "2100-01-01"),
    ("task_id", "a\x00b", "control characters"),
    ("task_id", "line\nbreak", "control characters"),
    ("task_id", "half \ud800 a pair", "lone surrogates"),
    ("task_id", "x" * 201, "at most 200"),
    ("task_id", "", "non-empty"),
    ("depends_on", ["ok", "nul\x00"], "depends_on"),
]


@pytest.mark.parametrize(("name", "value", "says"), BAD, ids=[f"{n}={v!r}"[:40] for n, v, _ in BAD])
def test_out_of_range_values_are_refused_naming_argument_and_range(
    name: str, value: Any, says: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(says)) as caught:
        build_task(FUNC, **{name: value})
    assert name.split("_at")[0].split("_id")[0] in str(caught.value)


def test_the_bounds_themselves_are_accepted() -> None:
    task = build_task(
        FUNC,
        priority=2**31 - 1,
        max_retries=1_000_000,
        timeout=50 * 365 * 86_400,
        retry_delay=0,
        result_ttl=0,
        run_at=datetime(2100, 1, 1, tzinfo=UTC),
        task_id="é" * 200,
    )
    assert task.priority == 2**31 - 1
    assert task.id == "é" * 200
    assert build_task(FUNC, priority=-(2**31)).priority == -(2**31)


def test_a_ready_made_task_is_held_to_the_same_limits() -> None:
    with pytest.raises(ValueError, match=r"priority of task 't1'.*2147483647"):
        check_task(Task(func=FUNC, id="t1", priority=2**63))
    with pytest.raises(ValueError, match="task id"):
        check_task(Task(func=FUNC, id="nul\x00"))
    with pytest.raises(ValueError, match="timeout of task 't2'"):
        check_task(Task(func=FUNC, id="t2", timeout=math.nan))
    assert check_task(Task(func=FUNC, id="fine")).id == "fine"
