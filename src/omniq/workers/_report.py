"""What a worker says on its console, in the manner of Celery's and Dramatiq's workers.

Levels are chosen so that the default console (INFO) shows what needs a human: one WARNING line
per failure that will be retried, one ERROR line per task that goes DEAD (each with the error;
the traceback joins the line at DEBUG), one INFO line per cancelled task, and a periodic INFO
summary. Per-task lines (received, succeeded, handed back) are DEBUG: at hundreds of tasks a
second they would drown everything else.

All lines go to the ``omniq.worker`` logger; how they look (rich on a terminal, plain lines
elsewhere) is the handler's business (:func:`omniq.config.logging.console_handler`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from omniq.config import get_logger
from omniq.models.task import Task

log = get_logger("worker")


def label(task: Task) -> str:
    """``module:function[task id]``: what the task runs and which one it is."""
    return f"{task.func}[{task.id}]"


def received(task: Task) -> None:
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "%s received from %r (attempt %d/%d)",
            label(task),
            task.queue_name,
            task.attempts,
            task.max_attempts,
        )


def succeeded(task: Task, duration: float) -> None:
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s succeeded in %.3fs", label(task), duration)


def _traceback(tb: str | None) -> str:
    # the text, not exc_info: an error from a process worker carries the child's traceback as text
    if tb and log.isEnabledFor(logging.DEBUG):
        return "\n" + tb.rstrip()
    return ""


def retrying(task: Task, error: str, tb: str | None, delay: float) -> None:
    log.warning(
        "%s failed (attempt %d/%d): %s; retrying in %.2fs%s",
        label(task),
        task.attempts,
        task.max_attempts,
        error,
        delay,
        _traceback(tb),
    )


def dead(task: Task, error: str, tb: str | None, why: str) -> None:
    log.error(
        "%s failed (attempt %d/%d): %s; DEAD: %s%s",
        label(task),
        task.attempts,
        task.max_attempts,
        error,
        why,
        _traceback(tb),
    )


def cancelled(task: Task) -> None:
    log.info("%s cancelled while running", label(task))


def handed_back(task: Task) -> None:
    log.debug("%s handed back to its queue (worker stopping)", label(task))


@dataclass
class Summary:
    """The periodic one-line summary: totals, what changed since the last line, the rate."""

    worker: str
    last_processed: int = 0
    last_failed: int = 0
    last_at: float = 0.0

    def __post_init__(self) -> None:
        self.last_at = time.monotonic()

    def line(
        self, processed: int, failed: int, running: int, depths: Mapping[str, int] | None
    ) -> str | None:
        """The summary, or None when nothing was processed since the last one and nothing runs or
        waits (an idle worker stays quiet)."""
        now = time.monotonic()
        elapsed = max(now - self.last_at, 1e-9)
        done = processed - self.last_processed
        depth = sum(depths.values()) if depths is not None else -1
        if done == 0 and running == 0 and depth <= 0:
            self.last_at = now
            return None
        rate = done / elapsed
        text = (
            f"worker {self.worker}: processed {processed} (+{done}), failed {failed} "
            f"(+{failed - self.last_failed}), {rate:.1f}/s, running {running}"
        )
        if depths is not None:
            text += ", waiting " + ", ".join(f"{q}={n}" for q, n in depths.items())
        self.last_processed, self.last_failed, self.last_at = processed, failed, now
        return text


__all__ = [
    "Summary",
    "cancelled",
    "dead",
    "handed_back",
    "label",
    "received",
    "retrying",
    "succeeded",
]
