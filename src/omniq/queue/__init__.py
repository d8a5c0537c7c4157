"""Task-queue level: builder, retry policy, and the ``XTaskQueue`` names of every backend
(``MemoryTaskQueue``, ``SQLiteTaskQueue``, ...), imported on demand."""

from __future__ import annotations

from omniq.queue.builder import build_task, validate_queue_name
from omniq.queue.retry import backoff_delay
from omniq.storage.registry import lazy_getattr, queue_exports

# every backend's ``<X>TaskQueue`` names come from the registry
_LAZY: dict[str, tuple[str, str]] = {
    **queue_exports(),
    "AsyncTaskQueue": ("omniq.task_queue", "AsyncTaskQueue"),
    "TaskQueue": ("omniq.task_queue", "TaskQueue"),
}
__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = ["backoff_delay", "build_task", "validate_queue_name", *_LAZY]
