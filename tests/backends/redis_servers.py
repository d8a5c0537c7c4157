"""The Redis topologies of reliability/redis_servers.py, for the tests: where ``redis-server``
is missing, a test that needs one is skipped (failed under ``OMNIQ_REQUIRE_SERVICES=1``, as for
any missing service) instead of erroring."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import pytest
from reliability import redis_servers as _servers
from reliability.redis_servers import (
    HOST,
    SENTINEL_MASTER,
    Cluster,
    SentinelSetup,
    Servers,
    _die_with_parent,
    free_port,
)

from tests.conftest import REQUIRE_SERVICES_ENV

P = ParamSpec("P")
R = TypeVar("R")


def require_redis_server() -> None:
    """Skips the calling test when ``redis-server`` is not installed (fails it under
    ``OMNIQ_REQUIRE_SERVICES=1``)."""
    problem = _servers.missing_redis_server()
    if problem is None:
        return
    if os.environ.get(REQUIRE_SERVICES_ENV) == "1":
        pytest.fail(f"{problem}, and {REQUIRE_SERVICES_ENV}=1 says they must be", pytrace=False)
    pytest.skip(problem)


def _needs_server(start: Callable[P, R]) -> Callable[P, R]:
    def checked(*args: P.args, **kwargs: P.kwargs) -> R:
        require_redis_server()
        return start(*args, **kwargs)

    checked.__doc__ = start.__doc__
    return checked


start_cluster = _needs_server(_servers.start_cluster)
start_sentinel = _needs_server(_servers.start_sentinel)
shared_cluster = _needs_server(_servers.shared_cluster)
shared_sentinel = _needs_server(_servers.shared_sentinel)

__all__ = [
    "HOST",
    "SENTINEL_MASTER",
    "Cluster",
    "SentinelSetup",
    "Servers",
    "_die_with_parent",
    "free_port",
    "require_redis_server",
    "shared_cluster",
    "shared_sentinel",
    "start_cluster",
    "start_sentinel",
]
