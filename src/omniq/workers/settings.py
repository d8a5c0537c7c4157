"""A worker's settings: the options of ``AsyncWorker(...)`` that travel together, as one value.

``AsyncWorker(queue, concurrency=8, queues=["high"])`` keeps working: the keywords are read into
a :class:`WorkerSettings` (:meth:`WorkerSettings.from_keywords`); ``settings=WorkerSettings(...)``
gives them at once (the YAML ``worker.config`` and ``omniq worker`` flags are the same keywords).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec


class WorkerSettings(msgspec.Struct, frozen=True, kw_only=True):
    """What a worker serves and how. None: the default (the queue's queues, the setting of the
    worker type for ``concurrency``, the queue's lease, a third of the lease between
    heartbeats, half of it between lease recoveries, a generated ``worker_id``)."""

    #: queues served, in this order ("high,low" or a list)
    queues: Sequence[str] | str | None = None
    #: tasks running at once (``max_workers`` is an alias)
    concurrency: int | None = None
    #: seconds a claim lasts without a heartbeat
    lease: float | None = None
    heartbeat_interval: float | None = None
    recover_interval: float | None = None
    #: seconds one claim waits for work before looking again
    idle_timeout: float = 5.0
    #: seconds a graceful stop lets running tasks finish
    shutdown_timeout: float = 30.0
    worker_id: str | None = None
    name: str | None = None
    #: run a scheduler loop beside the worker (occurrences are enqueued once however many run)
    scheduler: bool = True
    #: seconds the worker's registry record outlives its last renewal
    registry_ttl: float | None = None
    #: seconds between the INFO summary lines; 0 or None: off
    summary_interval: float | None = 30.0
    #: modules whose functions this worker runs (see omniq.registry)
    task_modules: str | Iterable[str] | None = None
    #: run any importable function (anyone who can write to the broker then runs code here)
    allow_any_function: bool | None = None
    #: finished tasks kept while their results cannot be written (stores away); when full the
    #: worker stops claiming until they are written. None: OMNIQ_RESULT_BUFFER (10,000)
    result_buffer: int | None = None
    #: rate limits of whole queues, shared by every worker given the same ones through the
    #: store: queue name -> "100/m" (see omniq.models.limits)
    rate_limits: Mapping[str, str] | None = None

    @classmethod
    def from_keywords(
        cls, options: Mapping[str, Any], *, base: WorkerSettings | None = None, caller: str
    ) -> WorkerSettings:
        """``base`` (or the defaults) with the keywords given laid over it; ``max_workers`` is
        read as ``concurrency``. An unknown keyword is refused naming it, as a signature would."""
        values = dict(options)
        if "max_workers" in values:
            alias = values.pop("max_workers")
            values.setdefault("concurrency", None)
            values["concurrency"] = values["concurrency"] or alias
        for key in values:
            if key not in cls.__struct_fields__:
                raise TypeError(f"{caller}() got an unexpected keyword argument {key!r}")
        settings = base if base is not None else cls()
        return msgspec.structs.replace(settings, **values) if values else settings


__all__ = ["WorkerSettings"]
