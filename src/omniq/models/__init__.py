"""OmniQ's data models (``msgspec.Struct``)."""

from omniq.models.config import *  # noqa: F403
from omniq.models.config import __all__ as _config_all
from omniq.models.event import EventType, TaskEvent
from omniq.models.progress import TaskProgress
from omniq.models.result import ResultStatus, TaskResult
from omniq.models.schedule import MissedRunPolicy, Schedule, ScheduleState
from omniq.models.task import DependencyPolicy, PassResults, Task, TaskStatus
from omniq.models.worker import WorkerInfo

__all__ = [
    "DependencyPolicy",
    "EventType",
    "MissedRunPolicy",
    "PassResults",
    "ResultStatus",
    "Schedule",
    "ScheduleState",
    "Task",
    "TaskEvent",
    "TaskProgress",
    "TaskResult",
    "TaskStatus",
    "WorkerInfo",
    *_config_all,
]
