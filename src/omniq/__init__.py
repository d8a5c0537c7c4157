"""OmniQ: an async-first task queue with a real sync API.

from omniq import OmniQ

oq = OmniQ()
oq.start_worker()
task_id = oq.enqueue(print, args=("hello",))
"""

from omniq.callbacks import CallbackManager, TaskOutcome
from omniq.core import AsyncOmniQ, OmniQ, TaskFunction
from omniq.exceptions import (
    BackendUnavailable,
    CircuitOpen,
    ConfigError,
    FunctionNotAllowed,
    FunctionNotFound,
    NoCurrentTask,
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
    DependencyPolicy,
    EventType,
    ResultStatus,
    Schedule,
    ScheduleState,
    Task,
    TaskEvent,
    TaskProgress,
    TaskResult,
    TaskStatus,
    WorkerInfo,
)
from omniq.progress import TaskContext, current_task
from omniq.task_queue import AsyncTaskQueue, EventStore, ResultStore, TaskQueue
from omniq.workers import AsyncWorker, Worker
from omniq.workflows import (
    TaskDependencyGraph,
    WorkflowRun,
    chain,
    chord,
    group,
    sig,
)

__version__ = "0.1.0"

__all__ = [
    "AsyncOmniQ",
    "AsyncTaskQueue",
    "AsyncWorker",
    "BackendUnavailable",
    "CallbackManager",
    "CircuitOpen",
    "ConfigError",
    "DependencyPolicy",
    "EventStore",
    "EventType",
    "FunctionNotAllowed",
    "FunctionNotFound",
    "NoCurrentTask",
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
    "TaskContext",
    "TaskDependencyGraph",
    "TaskEvent",
    "TaskExpiredError",
    "TaskFailedError",
    "TaskFunction",
    "TaskNotFound",
    "TaskOutcome",
    "TaskProgress",
    "TaskQueue",
    "TaskResult",
    "TaskStatus",
    "TaskTimeout",
    "Worker",
    "WorkerInfo",
    "WorkflowRun",
    "__version__",
    "chain",
    "chord",
    "current_task",
    "group",
    "sig",
]
