"""Scenario (e), short: bad input is refused naming the value; payloads damaged in storage go
DEAD with a clear reason while the worker lives and every other task runs."""

from __future__ import annotations

import pytest
from reliability import bad_input

from tests.faults.conftest import BACKEND_PARAMS, assert_passed


@pytest.mark.timeout(180)
@pytest.mark.parametrize("backend", BACKEND_PARAMS)
async def test_bad_input_is_refused_and_damaged_payloads_go_dead(backend: str) -> None:
    assert_passed(await bad_input.run(backend, big_mb=5))
