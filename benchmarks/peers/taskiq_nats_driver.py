"""taskiq with taskiq-nats's ``PullBasedJetStreamBroker`` (a JetStream stream and one durable
pull consumer shared by the workers, acknowledged delivery: the same guarantees OmniQ's NATS
backend gives), worker started by ``taskiq worker --workers 1`` with its default
``--max-async-tasks``. Bulk: taskiq has no bulk API; concurrent ``kiq`` with
``asyncio.gather`` (``_taskiq``). The stream's name contains "bench", so the harness wipes it
between phases."""

from __future__ import annotations

from _driver import main, nats_url
from _taskiq import taskiq_driver
from taskiq_nats import PullBasedJetStreamBroker

broker = PullBasedJetStreamBroker(
    servers=nats_url(),
    queue="bench_taskiq",
    stream_name="bench_taskiq",
    subject="bench_taskiq.tasks",
    durable="bench_taskiq",
)
enqueue, worker = taskiq_driver(broker, "taskiq_nats_driver")

if __name__ == "__main__":
    import taskiq_nats_driver

    main(("nats",), taskiq_nats_driver.enqueue, taskiq_nats_driver.worker)
