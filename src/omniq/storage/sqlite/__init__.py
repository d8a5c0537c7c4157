"""The SQLite backend: OmniQ's embedded default, durable and shared by every process on a machine.

One file holds tasks, schedules, results and events (``<base_dir>/<project_name>.db``, or any
``path``). See ``queue`` for how tasks are claimed, ``_db`` for durability and migrations, and
``_wake`` for how idle workers and result waiters wake up without polling.
"""

from omniq.storage.sqlite.events import AsyncSQLiteEventStorage, SQLiteEventStorage
from omniq.storage.sqlite.queue import AsyncSQLiteQueue, SQLiteQueue
from omniq.storage.sqlite.results import AsyncSQLiteResultStorage, SQLiteResultStorage

__all__ = [
    "AsyncSQLiteEventStorage",
    "AsyncSQLiteQueue",
    "AsyncSQLiteResultStorage",
    "SQLiteEventStorage",
    "SQLiteQueue",
    "SQLiteResultStorage",
]
