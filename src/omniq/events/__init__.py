"""Task lifecycle events: the buffered EventLogger (storage lives in omniq.storage)."""

from omniq.events.logger import EventLogger, EventLoggerStats
from omniq.models.event import EventType, TaskEvent

__all__ = ["EventLogger", "EventLoggerStats", "EventType", "TaskEvent"]
