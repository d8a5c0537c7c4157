"""Storage: the three interfaces (``base``) and one package per backend.

Everything is imported on first use (``from omniq.storage import SQLiteResultStorage`` loads only
the SQLite package), so an optional driver that is not installed never breaks ``import omniq``.
The backends' names come from the one registry, :mod:`omniq.storage.registry`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omniq.storage.registry import lazy_getattr, storage_exports

if TYPE_CHECKING:
    from omniq.storage.base import (
        BaseEventStorage as BaseEventStorage,
    )
    from omniq.storage.base import (
        BaseResultStorage as BaseResultStorage,
    )
    from omniq.storage.base import (
        BaseTaskQueue as BaseTaskQueue,
    )
    from omniq.storage.base import (
        Completion as Completion,
    )
    from omniq.storage.base import (
        EventQuery as EventQuery,
    )
    from omniq.storage.base import (
        HeartbeatStatus as HeartbeatStatus,
    )

_BASE = ("BaseEventStorage", "BaseResultStorage", "BaseTaskQueue", "Completion", "EventQuery")
_EXPORTS = {
    **{name: ("omniq.storage.base", name) for name in (*_BASE, "HeartbeatStatus")},
    **storage_exports(),
}
__getattr__ = lazy_getattr(__name__, _EXPORTS)

__all__ = [*_EXPORTS]
