"""What follows a task that did not succeed (a stop, an error: retry or DEAD, decided by
``omniq.queue.retry.decide``), and the callbacks of every outcome."""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from typing import Any, TypeVar

from omniq.callbacks import TaskOutcome, default_hooks, invoke
from omniq.config import get_logger
from omniq.exceptions import TaskTimeout
from omniq.models.event import EventType
from omniq.models.result import ResultStatus, TaskResult
from omniq.models.task import Task, TaskStatus
from omniq.queue.retry import decide
from omniq.registry import registry
from omniq.storage._breaker import away
from omniq.workers import _report
from omniq.workers._state import Running, WorkerState

log = get_logger("worker")

T = TypeVar("T")


class Outcomes(WorkerState):
    """Records stops and failures, and runs callbacks beside the worker."""

    async def _record_outcome(self, outcome: Coroutine[Any, Any, None], task: Task) -> None:
        """Writing a failure must not kill the runner: if the store is unreachable the task keeps
        its lease, which runs out, and the task comes back (at-least-once, nothing lost)."""
        try:
            await outcome
        except asyncio.CancelledError:
            return  # shutdown while recording: the lease covers the task
        except Exception as exc:
            if away(self.queue, self.result_store) is not None:  # an outage: no traceback
                log.warning(
                    "task %s: could not record its outcome (%s: %s); it returns when its lease "
                    "expires",
                    task.id,
                    type(exc).__name__,
                    exc,
                )
                return
            log.exception(
                "task %s: could not record its outcome; it returns when its lease expires", task.id
            )

    async def _through_outage(self, task: Task, call: Callable[[], Awaitable[T]]) -> T:
        """One store call of a task's outcome (its failure, its error result, its hand-back),
        tried again while the store is away instead of given up: the task keeps its claim,
        renewed by the heartbeat meanwhile (``_held``), so it is not run again when the server
        is back. It counts against the result buffer, like a finished task waiting for its
        result. A stop, or an error that is no outage, ends the wait: the lease covers it."""
        held = False
        try:
            while True:
                try:
                    return await call()
                except Exception as exc:
                    outage = self.queue._is_outage(exc) or self.result_store._is_outage(exc)
                    if not outage or self._stop is None or self._stop.is_set():
                        raise
                if not held:  # held until recorded, not between tries (the buffer's count)
                    self._held[task.id] = task.claim or ""
                    held = True
                breaker = away(self.queue, self.result_store)
                if breaker is not None:
                    await self._wait_out(breaker)
                else:  # not open yet: a few more failures will open it
                    await asyncio.sleep(0.05)
        finally:
            if held:
                self._held.pop(task.id, None)
                if self._buffer_full and self._slot_free is not None:
                    self._slot_free.set()  # the claim loop may wait for room in the buffer

    async def _on_stopped(self, running: Running) -> None:
        task = running.task
        reason = running.stop_reason
        claim = task.claim or ""
        if reason == "lost":
            self.stats.lost += 1
            log.warning("task %s: lease lost; another worker owns it now", task.id)
        elif reason == "cancel":
            self.stats.cancelled += 1
            _report.cancelled(task)
            await self._through_outage(
                task,
                lambda: self.queue.fail(
                    task.id,
                    claim,
                    error_type="TaskCancelledError",
                    error_message="cancelled while running",
                    status=TaskStatus.CANCELLED,
                ),
            )
            await self._store_final(
                task, ResultStatus.CANCELLED, "TaskCancelledError", "cancelled while running", None
            )
        else:  # shutdown: hand back so another worker takes it at once, attempt not counted
            await self.queue.release(task.id, claim)
            _report.handed_back(task)

    async def _on_error(self, task: Task, exc: BaseException, started: float) -> None:
        self.stats.processed += 1
        self.stats.failed += 1
        error_type, message, tb = _describe(exc)
        duration = round(time.perf_counter() - started, 6)
        if isinstance(exc, TaskTimeout):
            self._emit(EventType.TIMEOUT, task, timeout=task.timeout)
        self._emit(EventType.ERROR, task, error_type=error_type, error=message, duration=duration)
        decision = decide(task.retry_policy, task.attempts, exc)
        notify = self._has_callbacks(task)
        if decision.retry_at is not None:
            retry_at = decision.retry_at
            updated = await self._through_outage(
                task,
                lambda: self.queue.fail(
                    task.id,
                    task.claim or "",
                    error_type=error_type,
                    error_message=message,
                    error_traceback=tb,
                    retry_at=retry_at,
                    status=TaskStatus.PENDING,
                ),
            )
            if updated is not None:
                self.stats.retried += 1
                _report.retrying(task, f"{error_type}: {message}", tb, decision.delay)
                if notify:
                    outcome = TaskOutcome(
                        "retry",
                        task,
                        self.worker_id,
                        error=exc,
                        error_type=error_type,
                        error_message=message,
                        retry_at=updated.eta or decision.retry_at,
                        duration=duration,
                    )
                    self._spawn_callbacks(outcome, "retry")
            return
        await self._finish_failed(task, error_type, message, tb)
        _report.dead(task, f"{error_type}: {message}", tb, decision.why)
        if notify:
            outcome = TaskOutcome(
                "failure",
                task,
                self.worker_id,
                error=exc,
                error_type=error_type,
                error_message=message,
                duration=duration,
            )
            self._spawn_callbacks(outcome, "failure", "complete")

    async def _finish_failed(
        self, task: Task, error_type: str, message: str, tb: str | None
    ) -> None:
        """Out of attempts, or poison: the result first, then the task goes DEAD."""
        await self._store_final(task, ResultStatus.ERROR, error_type, message, tb)
        updated = await self._through_outage(
            task,
            lambda: self.queue.fail(
                task.id,
                task.claim or "",
                error_type=error_type,
                error_message=message,
                error_traceback=tb,
            ),
        )
        if updated is not None:
            self.stats.dead += 1

    async def _store_final(
        self,
        task: Task,
        status: ResultStatus,
        error_type: str | None,
        message: str | None,
        tb: str | None,
    ) -> None:
        """The result of a final failure is stored before the task is marked, as for success. If
        that fails the task is not marked at all: its lease runs out and it comes back, so a
        waiter on ``get_result`` is never left without a result for a finished task."""
        result = TaskResult.for_task(
            task,
            status,
            error=message,
            error_type=error_type,
            traceback=tb,
            worker_id=self.worker_id,
        )
        await self._through_outage(task, lambda: self.result_store.set(result))

    # -- callbacks -------------------------------------------------------------------------
    def _callbacks_for(self, task: Task, event: str) -> list[Callable[..., Any]]:
        funcs: list[Callable[..., Any]] = []
        if default_hooks:
            funcs += default_hooks.hooks(event)
        if self.callbacks:
            funcs += self.callbacks.hooks(event)
        for ref in task.callbacks.get(f"on_{event}", ()):
            funcs.append(ref if callable(ref) else registry.resolve(ref, self.functions))
        return funcs

    def _has_callbacks(self, task: Task) -> bool:
        return bool(task.callbacks) or bool(default_hooks) or bool(self.callbacks)

    async def _run_callbacks(self, outcome: TaskOutcome, *events: str) -> None:
        """Runs the callbacks of each event; one that raises is logged and counted, and the
        task's outcome stands (a callback never fails its task)."""
        for event in events:
            try:
                funcs = self._callbacks_for(outcome.task, event)
            except Exception:
                log.exception("task %s: a %s callback cannot be resolved", outcome.task.id, event)
                self.stats.callback_errors += 1
                continue
            if not funcs:
                continue
            current = outcome if outcome.event == event else replace(outcome, event=event)
            for func in funcs:
                if not await invoke(func, current):
                    self.stats.callback_errors += 1

    def _spawn_callbacks(self, outcome: TaskOutcome, *events: str) -> None:
        """Callbacks run beside the worker, not in the task's slot: a slow one delays nobody."""
        runner = asyncio.create_task(self._run_callbacks(outcome, *events))
        self._callback_tasks.add(runner)
        runner.add_done_callback(self._callback_tasks.discard)


def _describe(exc: BaseException) -> tuple[str, str, str]:
    """Type name, message and traceback of a task's error. An error raised in another process
    arrives wrapped, carrying the original ``type_name`` and ``remote_traceback``."""
    remote_type = getattr(exc, "type_name", None)
    if isinstance(remote_type, str):
        return remote_type, str(exc), str(getattr(exc, "remote_traceback", ""))
    return type(exc).__name__, str(exc), "".join(traceback.format_exception(exc))
