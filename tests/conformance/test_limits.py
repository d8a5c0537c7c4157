"""Whatever the enqueue limits accept (omniq.models.task), every backend stores and returns
unchanged: the limits are the backends' common ground, not one backend's."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omniq.models.task import (
    MAX_ID_LENGTH,
    MAX_RETRIES_RANGE,
    MAX_SECONDS,
    PRIORITY_RANGE,
    TIME_RANGE,
)
from omniq.storage.base import BaseTaskQueue

from .helpers import FUNC

T = TypeVar("T")

_ID_CHARS = st.characters(
    blacklist_categories=("Cs", "Cc"),  # what check_id refuses: control characters, surrogates
)
_SECONDS = st.floats(min_value=0, max_value=MAX_SECONDS, allow_nan=False)
_TIMES = st.datetimes(
    min_value=TIME_RANGE[0].replace(tzinfo=None),
    max_value=TIME_RANGE[1].replace(tzinfo=None),
    timezones=st.just(UTC),
)


@st.composite
def _options(draw: st.DrawFn) -> dict[str, Any]:
    # a unique suffix: examples share one store, and an id already stored is an idempotent no-op
    stem = draw(st.text(_ID_CHARS, min_size=1, max_size=MAX_ID_LENGTH - 33))
    return {
        "task_id": f"{stem}-{uuid.uuid4().hex}",
        "priority": draw(st.integers(*PRIORITY_RANGE)),
        "max_retries": draw(st.integers(*MAX_RETRIES_RANGE)),
        "timeout": draw(_SECONDS.filter(lambda s: s > 0)),
        "retry_delay": draw(_SECONDS),
        "result_ttl": draw(_SECONDS),
        "run_at": draw(_TIMES),
        "expires_at": datetime(2100, 1, 1, tzinfo=UTC),
    }


async def test_accepted_values_round_trip_on_every_backend(queue: BaseTaskQueue) -> None:
    loop = asyncio.get_running_loop()

    def on_loop(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=60)

    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(_options())
    def round_trip(options: dict[str, Any]) -> None:
        if options["run_at"] >= options["expires_at"]:
            options["expires_at"] = None
        task_id = on_loop(queue.enqueue(FUNC, args=(1, 2), **options))
        assert task_id == options["task_id"]
        stored = on_loop(queue.get_task(task_id))
        assert stored is not None
        assert stored.id == options["task_id"]
        for name in ("priority", "max_retries", "timeout", "retry_delay", "result_ttl"):
            assert getattr(stored, name) == options[name], name
        assert stored.eta == options["run_at"]
        assert stored.expires_at == options["expires_at"]

    await asyncio.to_thread(round_trip)
