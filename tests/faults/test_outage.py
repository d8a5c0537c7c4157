"""Scenario (k), the "Done when" of issue 19's circuit breaker: a private Redis or PostgreSQL
server stopped for 10 s while two worker processes drain 3,000 tasks. Nothing is lost or run
twice, no worker dies, work resumes within 2 s of the server's return, and the workers' logs
say so in a few lines."""

from __future__ import annotations

import glob
import os

import pytest
from reliability import outage

from tests.backends.redis_servers import require_redis_server
from tests.faults.conftest import assert_passed


@pytest.mark.timeout(180)
@pytest.mark.parametrize("backend", ["redis", "postgres"])
async def test_server_down_10s_under_draining_workers(backend: str) -> None:
    if backend == "redis":
        require_redis_server()
    elif not glob.glob("/usr/lib/postgresql/*/bin/pg_ctl") or os.geteuid() != 0:
        pytest.skip("a private PostgreSQL needs its binaries and root (it runs as 'postgres')")
    assert_passed(await outage.run(backend, outage.OutageOptions(tasks=3_000)))
