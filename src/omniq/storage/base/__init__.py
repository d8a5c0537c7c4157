"""The three storage interfaces (ARCHITECTURE section 2): a task queue, a result storage and an
event storage. Public methods live here once: they validate, serialize, emit events and keep the
semantics of section 3, then call a backend's underscore primitives. A backend writes only the
primitives (each one atomic in its store) and never re-implements policy.

The task queue: a required core plus optional capabilities
===========================================================

:class:`BaseTaskQueue` (``queue.py``, its public methods) stands on the core every backend
writes, 12 primitives (``primitives.py``, whose docstrings are their contracts):
``_enqueue``, ``_claim``, ``_wait_for_tasks`` (the native wake-up), ``_heartbeat``, ``_complete``,
``_fail``, ``_release``, ``_cancel``, ``_requeue``, ``_recover_expired``, ``_expire`` (TTL) and
``_get_tasks``. ``_get_task`` falls back to ``_get_tasks``.

Everything else is a capability. A backend declares what it offers by inheriting the mixin (a
subclass of :class:`BaseTaskQueue`; classes of its own that implement primitives come first in its
bases) and writes that mixin's abstract primitives; a fallback is used where the mixin can build
one from other primitives:

================================  ==================================  ===========================
mixin (module)                    must write                          falls back (override to go
                                                                      faster)
================================  ==================================  ===========================
SupportsListing (listing)         ``_list_tasks``                     ``_queue_size``, ``_stats``
SupportsPurge (listing)           ``_purge``                          --
SupportsDependencies              ``_promote``, ``_cancel_waiting``   ``_dependents``
(dependencies; needs listing)
SupportsSchedules (schedules)     ``_save_schedule``,                 ``_due_schedules``
                                  ``_get_schedule``,
                                  ``_list_schedules``,
                                  ``_update_schedule``,
                                  ``_delete_schedule``
SupportsWorkerRegistry (workers)  ``_save_worker``, ``_list_workers``,  --
                                  ``_delete_worker``
SupportsCancelSignal (cancels)    ``_signal_cancel``,                 the heartbeat (the
                                  ``_listen_cancels``                 worker sees it there)
SupportsProgress (progress)       ``_set_progress`` (and readers lay  --
                                  the stored bytes over tasks with
                                  ``lay_progress``)
SupportsLimits (limits)           ``_take_token``, ``_acquire_slot``, --
                                  ``_release_slot``, ``_limit_usage``,
                                  ``_sweep_limits``
RecordLimits (limits)             ``_change_limit``,                  (one record changed
                                  ``_read_limits``, ``_drop_limits``  atomically)
================================  ==================================  ===========================

Callers ask with ``queue.supports(Capability.SCHEDULES)``; a public method of a capability the
backend does not offer raises :class:`~omniq.exceptions.UnsupportedCapability` naming the backend
and the capability (``OptionalSurface`` in ``capabilities.py``). Without dependencies a task with
``depends_on`` is refused at enqueue, and the settling hooks do nothing (nothing can wait).

Results and events
==================

:class:`BaseResultStorage` (``results.py``): ``_set_many``, ``_get``, ``_wait_for``,
``_get_latest``, ``_delete``, ``_cleanup``; ``_get_many`` falls back to ``_get``.
:class:`BaseEventStorage` (``events.py``): ``_log_events``, ``_get_events`` (an
:class:`EventQuery`, with :meth:`EventQuery.matches` for stores that filter in Python) and
``_cleanup_old_events``.
"""

from omniq.exceptions import UnsupportedCapability
from omniq.storage.base.cancels import SupportsCancelSignal
from omniq.storage.base.capabilities import Capability, OptionalSurface
from omniq.storage.base.component import Component
from omniq.storage.base.dependencies import SupportsDependencies, dependency_verdict
from omniq.storage.base.events import BaseEventStorage, EventQuery
from omniq.storage.base.limits import RecordLimits, SupportsLimits
from omniq.storage.base.listing import SupportsListing, SupportsPurge
from omniq.storage.base.progress import SupportsProgress, lay_progress
from omniq.storage.base.queue import BaseTaskQueue
from omniq.storage.base.results import BaseResultStorage
from omniq.storage.base.schedules import SupportsSchedules
from omniq.storage.base.types import (
    Completion,
    Failure,
    HeartbeatStatus,
    as_corrupt,
    decoded_or_shell,
    decoded_state,
    new_claim,
    record_view,
    undecodable_kind,
)
from omniq.storage.base.workers import SupportsWorkerRegistry

__all__ = [
    "BaseEventStorage",
    "BaseResultStorage",
    "BaseTaskQueue",
    "Capability",
    "Completion",
    "Component",
    "EventQuery",
    "Failure",
    "HeartbeatStatus",
    "OptionalSurface",
    "RecordLimits",
    "SupportsCancelSignal",
    "SupportsDependencies",
    "SupportsLimits",
    "SupportsListing",
    "SupportsProgress",
    "SupportsPurge",
    "SupportsSchedules",
    "SupportsWorkerRegistry",
    "UnsupportedCapability",
    "as_corrupt",
    "decoded_or_shell",
    "decoded_state",
    "dependency_verdict",
    "lay_progress",
    "new_claim",
    "record_view",
    "undecodable_kind",
]
