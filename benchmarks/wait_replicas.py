"""The cost of ``wait_replicas`` on Redis: enqueue latency with WAIT 0, 1 and 2.

    uv run python -m benchmarks.wait_replicas -n 3000 [--cluster]

Starts a private master with two replicas on loopback (``redis-server`` must be installed; the
set-up of reliability/redis_servers.py) and enqueues one task at a time on three queues of
the same master, ``wait_replicas=0/1/2``, taking turns so that the machine's load drifts the
same way for all three. Prints p50 / p99 per setting. The replicas are on the same host here:
over a network, each WAIT adds one replica round trip. ``--cluster``: a private Cluster of three
masters with two replicas each instead, the three settings on one project (so on one master),
where the write and its WAIT go together to the slot's master.

``python -m benchmarks.roundtrip --url 'redis://host:port/0?wait_replicas=1'`` gives the
throughput figures on an existing set-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

from reliability.redis_servers import start_cluster, start_sentinel

from benchmarks.noop import noop
from omniq.storage.redis import AsyncRedisQueue


async def run(url: str, n: int, *, one_project: bool) -> dict[str, dict[str, float]]:
    shared = f"bench-wait-{uuid.uuid4().hex[:8]}"
    queues = {
        w: AsyncRedisQueue(
            url=url,
            project_name=shared if one_project else f"bench-wait-{uuid.uuid4().hex[:8]}",
            wait_replicas=w,
        )
        for w in (0, 1, 2)
    }
    for queue in queues.values():
        await queue.connect()
    latencies: dict[int, list[float]] = {w: [] for w in queues}
    try:
        for i in range(n):
            for w, queue in queues.items():
                start = time.perf_counter()
                await queue.enqueue(noop, args=(i,))
                latencies[w].append(time.perf_counter() - start)
    finally:
        for queue in queues.values():
            await queue.close()
    out = {}
    for w, values in latencies.items():
        values.sort()
        out[f"wait_replicas={w}"] = {
            "enqueue_p50_ms": round(1000 * values[len(values) // 2], 3),
            "enqueue_p99_ms": round(1000 * values[int(len(values) * 0.99)], 3),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=3000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--cluster", action="store_true", help="on a Redis Cluster")
    args = parser.parse_args()
    if args.cluster:
        cluster = start_cluster(3, replicas=2)
        servers = cluster.servers
        url = "redis+cluster://" + ",".join(cluster.nodes)
    else:
        setup = start_sentinel(replicas=2)  # the sentinels stay idle: only the replicas matter
        servers = setup.servers
        url = f"redis://127.0.0.1:{setup.master_port}/0"
    try:
        result = asyncio.run(run(url, args.n, one_project=args.cluster))
    finally:
        servers.stop()
    if args.json:
        print(json.dumps(result))
    else:
        for name, figures in result.items():
            print(f"{name:<16} " + "  ".join(f"{k} {v:.3f}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
