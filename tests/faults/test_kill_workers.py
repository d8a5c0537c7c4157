"""Scenario (a), short: worker processes SIGKILLed while they drain; nothing is lost and a task
runs twice only if a killed worker ran it first."""

from __future__ import annotations

import pytest
from reliability import kill

from tests.faults.conftest import BACKEND_PARAMS, assert_passed

SHORT = kill.KillOptions(
    tasks=1_000, workers=2, kill_every=2.0, work_ms=20, concurrency=5, deadline=90
)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("backend", BACKEND_PARAMS)
async def test_killed_workers_lose_no_task_and_duplicate_only_killed_runs(backend: str) -> None:
    assert_passed(await kill.run(backend, SHORT))
