"""Capability: schedules (cron and interval), stored beside the tasks.

A backend writes five primitives: ``_save_schedule``, ``_get_schedule``, ``_list_schedules``,
``_update_schedule`` (a compare-and-set on ``next_run_at`` when asked) and ``_delete_schedule``.
``_due_schedules`` falls back to filtering the active schedules; a backend with an index on
``next_run_at`` overrides it.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable
from datetime import datetime
from typing import Any, ClassVar

from omniq._time import as_utc, utcnow
from omniq.config import get_logger
from omniq.exceptions import SerializationError, TaskNotFound
from omniq.models.event import EventType, TaskEvent
from omniq.models.schedule import Schedule, ScheduleState
from omniq.queue.builder import check_allowed_queue
from omniq.serialization import Serializer
from omniq.storage.base.capabilities import Capability
from omniq.storage.base.queue import BaseTaskQueue

log = get_logger("storage")

#: (store, reason) of the unreadable schedules already reported by this process: the scheduler
#: reads the due ones every second, and one warning per bad record is enough
_REPORTED: set[tuple[str, str]] = set()


class SupportsSchedules(BaseTaskQueue):
    """Offers storing schedules and handing out the due ones to one scheduler loop at a time."""

    provides: ClassVar[Capability | None] = Capability.SCHEDULES

    async def save_schedule(self, schedule: Schedule) -> str:
        check_allowed_queue(schedule.queue_name, self.queues)
        payload = self.serializer.encode_schedule(schedule)
        await self._ensure()
        await self._save_schedule(schedule, payload)
        self._emit_schedule(
            EventType.SCHEDULED,
            schedule,
            cron=schedule.cron,
            interval=schedule.interval,
            timezone=schedule.timezone,
            next_run_at=schedule.next_run_at.isoformat() if schedule.next_run_at else None,
        )
        return schedule.id

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        await self._ensure()
        return await self._get_schedule(schedule_id)

    async def list_schedules(self, state: ScheduleState | str | None = None) -> list[Schedule]:
        await self._ensure()
        st = ScheduleState(state) if state is not None else None
        return await self._list_schedules(st)

    async def _set_state(self, schedule_id: str, state: ScheduleState, event: EventType) -> bool:
        await self._ensure()
        schedule = await self._get_schedule(schedule_id)
        if schedule is None:
            raise TaskNotFound(f"no schedule with id {schedule_id!r}")
        if schedule.state is state:
            return False
        changed = await self._update_schedule(schedule_id, {"state": state})
        if changed:
            self._emit_schedule(event, schedule)
        return changed

    def _emit_schedule(self, event_type: EventType, schedule: Schedule, **details: Any) -> None:
        """A schedule's own event: its id stands as the task id, so ``get_events(sid)`` finds
        it; details that are None are left out."""
        if self.event_logger is not None:
            self.event_logger.emit(
                TaskEvent(
                    task_id=schedule.id,
                    schedule_id=schedule.id,
                    event_type=event_type,
                    queue_name=schedule.queue_name,
                    func=schedule.func,
                    details={k: v for k, v in details.items() if v is not None},
                )
            )

    async def pause_schedule(self, schedule_id: str) -> bool:
        return await self._set_state(schedule_id, ScheduleState.PAUSED, EventType.SCHEDULE_PAUSED)

    async def resume_schedule(self, schedule_id: str) -> bool:
        return await self._set_state(schedule_id, ScheduleState.ACTIVE, EventType.SCHEDULE_RESUMED)

    async def delete_schedule(self, schedule_id: str) -> bool:
        await self._ensure()
        return await self._delete_schedule(schedule_id)

    async def claim_due_schedules(self, now: datetime | None = None) -> list[Schedule]:
        """Active schedules whose ``next_run_at`` has come. The caller advances each one with
        :meth:`advance_schedule`, a compare-and-set that only one scheduler loop wins."""
        await self._ensure()
        return await self._due_schedules(as_utc(now or utcnow()))

    async def advance_schedule(
        self, schedule_id: str, expected_next_run_at: datetime | None, changes: dict[str, Any]
    ) -> bool:
        await self._ensure()
        return await self._update_schedule(
            schedule_id, changes, expected_next_run_at=expected_next_run_at, check_next_run=True
        )

    @abstractmethod
    async def _save_schedule(self, schedule: Schedule, payload: bytes) -> None: ...

    @abstractmethod
    async def _get_schedule(self, schedule_id: str) -> Schedule | None: ...

    @abstractmethod
    async def _list_schedules(self, state: ScheduleState | None) -> list[Schedule]: ...

    @abstractmethod
    async def _update_schedule(
        self,
        schedule_id: str,
        changes: dict[str, Any],
        *,
        expected_next_run_at: datetime | None = None,
        check_next_run: bool = False,
    ) -> bool: ...

    @abstractmethod
    async def _delete_schedule(self, schedule_id: str) -> bool: ...

    async def _due_schedules(self, now: datetime) -> list[Schedule]:
        """Fallback: the active schedules whose ``next_run_at`` has come, found by listing."""
        return [
            s
            for s in await self._list_schedules(ScheduleState.ACTIVE)
            if s.next_run_at is not None and s.next_run_at <= now
        ]


def readable_schedules(store: Any, payloads: Iterable[Any]) -> list[Schedule]:
    """The schedules of ``payloads`` that decode; one that does not (damaged, or written by
    someone without the key: a crafted pickle, a payload that fails its signature) is left out
    with a warning naming the reason (:func:`report_unreadable`), instead of failing the whole
    listing and with it every schedule of the project (the scheduler reads the due ones in one
    call). ``store`` is the schedule store (its serializer, and its name for the warning)."""
    serializer: Serializer = store.serializer
    found: list[Schedule] = []
    for payload in payloads:
        try:
            found.append(serializer.decode_schedule(payload))
        except SerializationError as exc:
            report_unreadable(store, exc)
    return found


def report_unreadable(store: Any, exc: SerializationError) -> None:
    """One warning per unreadable schedule and process (the scheduler meets it every second)."""
    where = f"{store.server_label()} project {store.project_name!r}"
    key = (where, str(exc))
    if key in _REPORTED:
        return
    if len(_REPORTED) >= 1024:
        _REPORTED.clear()
    _REPORTED.add(key)
    log.warning(
        "a stored schedule of %s cannot be read and is skipped (%s: %s); the other schedules "
        "run on: delete it or save it again",
        where,
        type(exc).__name__,
        exc,
    )
