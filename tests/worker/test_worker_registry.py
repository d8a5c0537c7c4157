"""A running worker publishes its state (what ``omniq info`` lists) and withdraws it at stop."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from omniq import AsyncOmniQ
from omniq.backend import create_backend
from tests import tasks_fixture as tf


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_a_worker_is_listed_with_its_stats_while_it_serves(kind: str, tmp_path: Path) -> None:
    url = "memory://" if kind == "memory" else f"sqlite:///{tmp_path / 'reg.db'}"
    backend = create_backend(url=url) if kind == "sqlite" else create_backend("memory")
    async with AsyncOmniQ.from_backend(backend) as oq:
        await oq.start_worker(concurrency=3, recover_interval=0.1, queues=["default", "low"])
        try:
            ids = [await oq.enqueue(tf.add, args=(i, i)) for i in range(5)]
            for tid in ids:
                await oq.get_result(tid, timeout=30)
            assert oq.worker is not None
            worker_id = oq.worker.worker_id
            deadline = asyncio.get_running_loop().time() + 30
            while True:  # the record is renewed every recover_interval
                [info] = await oq.list_workers()
                if info.processed == 5 or asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.05)
            assert info.worker_id == worker_id
            assert info.worker_type == "async"
            assert info.pid == os.getpid()
            assert info.queues == ["default", "low"]
            assert info.concurrency == 3
            assert (info.processed, info.succeeded, info.failed) == (5, 5, 0)
            assert info.uptime >= 0
        finally:
            await oq.stop_worker()
        assert await oq.list_workers() == []
