"""The file backend: a queue with no database, in a local folder, ``memory://`` or a bucket
(S3, Azure Blob, GCS) through obstore. Claims are compare-and-set writes of one state object
(``_state.py``); payloads, results and events are objects of their own (``queue.py``,
``stores.py``); ``_store.py`` turns ``base_dir`` and ``storage_options`` into a store."""

from __future__ import annotations

from typing import TYPE_CHECKING

from omniq.storage.registry import lazy_getattr, submodule_exports

if TYPE_CHECKING:
    from omniq.storage.file.backend import AsyncFileBackend, FileBackend
    from omniq.storage.file.config import (
        FileConfig,
        FileEventStorageConfig,
        FileResultStorageConfig,
        FileTaskQueueConfig,
    )
    from omniq.storage.file.queue import AsyncFileQueue, FileQueue
    from omniq.storage.file.stores import (
        AsyncFileEventStorage,
        AsyncFileResultStorage,
        FileEventStorage,
        FileResultStorage,
    )

_EXPORTS = submodule_exports(
    __name__,
    {
        "queue": ("AsyncFileQueue", "FileQueue"),
        "stores": (
            "AsyncFileResultStorage",
            "FileResultStorage",
            "AsyncFileEventStorage",
            "FileEventStorage",
        ),
        "backend": ("AsyncFileBackend", "FileBackend"),
        "config": (
            "FileConfig",
            "FileTaskQueueConfig",
            "FileResultStorageConfig",
            "FileEventStorageConfig",
        ),
    },
)
_EXPORTS["AsyncFileTaskQueue"] = (f"{__name__}.queue", "AsyncFileQueue")
_EXPORTS["FileTaskQueue"] = (f"{__name__}.queue", "FileQueue")
__getattr__ = lazy_getattr(__name__, _EXPORTS)

__all__ = [
    "AsyncFileBackend",
    "AsyncFileEventStorage",
    "AsyncFileQueue",
    "AsyncFileResultStorage",
    "FileBackend",
    "FileConfig",
    "FileEventStorage",
    "FileEventStorageConfig",
    "FileQueue",
    "FileResultStorage",
    "FileResultStorageConfig",
    "FileTaskQueueConfig",
]
