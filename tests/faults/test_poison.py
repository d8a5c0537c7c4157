"""Scenario (d), short: a task that kills its process ends DEAD after its retries, never loops,
and the worker (or its replacement) serves on."""

from __future__ import annotations

import pytest
from reliability import poison

from tests.faults.conftest import assert_passed


@pytest.mark.timeout(120)
@pytest.mark.parametrize("worker_type", ["process", "async"])
async def test_task_killing_its_process_ends_dead_after_its_retries(worker_type: str) -> None:
    options = poison.PoisonOptions(worker_type=worker_type, max_retries=1, deadline=60)
    assert_passed(await poison.run("sqlite", options))
