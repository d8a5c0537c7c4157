"""Redis high availability under faults, on private topologies the tests start themselves
(tests/backends/redis_servers.py): kill -9 of the Cluster master serving the project's slot
mid-drain, ``SENTINEL FAILOVER`` mid-drain with a producer running (``wait_replicas=1``), and
SIGSTOP of the Sentinel-managed master with busy and with idle workers. The scenario and its
criteria are those of ``python -m reliability redis-ha`` (reliability/redis_ha.py), at CI size:
nothing lost, no acknowledged enqueue missing, work resumed within 10 s of the promotion with no
restart, every waiting get_result answered, duplicates only of tasks running at the fault."""

from __future__ import annotations

import pytest

pytest.importorskip("redis.asyncio")

from reliability import redis_ha

from tests.backends.redis_servers import require_redis_server
from tests.faults.conftest import assert_passed

SHORT = redis_ha.HAOptions(tasks=600, waiters=100, concurrency=20, work_ms=5, deadline=60)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "fault",
    ["cluster-kill", "sentinel-failover", "sentinel-sigstop-busy", "sentinel-sigstop-idle"],
)
async def test_a_redis_failover_loses_nothing_and_work_resumes_by_itself(fault: str) -> None:
    require_redis_server()
    assert_passed(await redis_ha.run(fault, SHORT))
