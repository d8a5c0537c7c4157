"""The short fault scenarios of ``reliability/`` as tests: each runs real worker processes on a
real backend and fails with the scenario's figures when one of its pass criteria fails."""

from __future__ import annotations

import pytest
from reliability.harness import Outcome

#: backends with the service each needs (none for SQLite)
BACKEND_PARAMS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.services("postgres")),
    pytest.param("redis", id="redis", marks=pytest.mark.services("redis")),
]


def assert_passed(outcome: Outcome) -> None:
    """Fails with every figure and criterion of the run, so a red CI log says what broke."""
    assert outcome.passed, "\n" + outcome.render()
