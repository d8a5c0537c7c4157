"""OmniQ: an async-first task queue with a real sync API.

from omniq import OmniQ

oq = OmniQ()
oq.start_worker()
task_id = oq.enqueue(print, args=("hello",))
"""

from omniq.core import (
    AsyncOmniQ,
    AsyncTaskQueue,
    EventStore,
    OmniQ,
    ResultStore,
    TaskFunction,
    TaskQueue,
)
from omniq.exceptions import (
    BackendUnavailable,
    ConfigError,
    FunctionNotFound,
    LeaseLost,
    OmniQError,
    QueueNameError,
    SerializationError,
    SignatureError,
    TaskCancelledError,
    TaskExpiredError,
    TaskFailedError,
    TaskNotFound,
    TaskTimeout,
)
from omniq.models import (
    EventType,
    ResultStatus,
    Schedule,
    ScheduleState,
    Task,
    TaskEvent,
    TaskResult,
    TaskStatus,
)
from omniq.workers import AsyncWorker, Worker

__version__ = "0.1.0"

__all__ = [
    "AsyncOmniQ",
    "AsyncTaskQueue",
    "AsyncWorker",
    "BackendUnavailable",
    "ConfigError",
    "EventStore",
    "EventType",
    "FunctionNotFound",
    "LeaseLost",
    "OmniQ",
    "OmniQError",
    "QueueNameError",
    "ResultStatus",
    "ResultStore",
    "Schedule",
    "ScheduleState",
    "SerializationError",
    "SignatureError",
    "Task",
    "TaskCancelledError",
    "TaskEvent",
    "TaskExpiredError",
    "TaskFailedError",
    "TaskFunction",
    "TaskNotFound",
    "TaskQueue",
    "TaskResult",
    "TaskStatus",
    "TaskTimeout",
    "Worker",
    "__version__",
]
