"""taskiq with taskiq-redis's ``RedisStreamBroker`` (acknowledged delivery, as its docs recommend
over the list and pub/sub brokers), worker started by ``taskiq worker --workers 1`` with its
default ``--max-async-tasks``. Bulk: taskiq has no bulk API; concurrent ``kiq`` with
``asyncio.gather`` (``_taskiq``)."""

from __future__ import annotations

from _driver import main, redis_url
from _taskiq import taskiq_driver
from taskiq_redis import RedisStreamBroker

broker = RedisStreamBroker(url=redis_url())
enqueue, worker = taskiq_driver(broker, "taskiq_driver")

if __name__ == "__main__":
    import taskiq_driver

    main(("redis",), taskiq_driver.enqueue, taskiq_driver.worker)
