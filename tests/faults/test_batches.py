"""Scenario (i), short: a producer SIGKILLed mid ``enqueue_many`` leaves none or all of its
batch stored, and the same batch sent again stores every task exactly once."""

from __future__ import annotations

import pytest
from reliability import batches

from tests.faults.conftest import BACKEND_PARAMS, assert_passed


@pytest.mark.timeout(300)
@pytest.mark.parametrize("backend", BACKEND_PARAMS)
async def test_a_producer_killed_mid_batch_leaves_none_or_all_of_it(backend: str) -> None:
    assert_passed(await batches.run(backend, 10_000))
