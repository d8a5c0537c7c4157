"""The progress value (issue 19, item 3): its checks name the bad value, and its envelope is
msgpack only, signed like every payload, bounded, and bound to its task."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from omniq.exceptions import SerializationError, SignatureError
from omniq.models.progress import MAX_NOTE, MAX_PROGRESS_BYTES, TaskProgress
from omniq.models.task import Task
from omniq.progress import TaskContext
from omniq.serialization import Serializer
from omniq.serialization.envelope import FORMAT_MSGPACK

WHEN = datetime(2026, 5, 1, tzinfo=UTC)


def context() -> tuple[TaskContext, list[TaskProgress]]:
    sent: list[TaskProgress] = []
    task = Task(func="operator:add", id="t-1", attempts=2, claim="w:2:abc")
    return TaskContext(task, lambda _id, _claim, p: sent.append(p)), sent


@pytest.mark.parametrize(
    ("value", "error"),
    [(1.01, ValueError), (-0.5, ValueError), (float("inf"), ValueError), (True, TypeError),
     ("0.5", TypeError), (None, TypeError)],
)  # fmt: skip
def test_a_fraction_outside_0_to_1_is_refused_naming_it(value: object, error: type) -> None:
    ctx, sent = context()
    with pytest.raises(error, match="progress must be a number from 0 to 1") as info:
        ctx.set_progress(value)  # type: ignore[arg-type]
    assert repr(value) in str(info.value)
    assert sent == []


def test_a_note_must_be_short_text() -> None:
    ctx, sent = context()
    with pytest.raises(TypeError, match="note must be a string, got 42"):
        ctx.set_progress(0.5, 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=f"at most {MAX_NOTE} characters, got {MAX_NOTE + 1}"):
        ctx.set_progress(0.5, "x" * (MAX_NOTE + 1))
    assert sent == []


def test_data_is_checked_where_the_task_reports() -> None:
    ctx, sent = context()
    with pytest.raises(SerializationError, match="plain data"):
        ctx.set_progress(0.5, data={"handle": object()})
    with pytest.raises(ValueError, match=f"limit of {MAX_PROGRESS_BYTES}"):
        ctx.set_progress(0.5, data=["x" * 1000] * 20)
    assert sent == []


def test_a_report_carries_the_attempt_and_the_time_and_is_passed_on() -> None:
    ctx, sent = context()
    ctx.set_progress(1, "done", data={"rows": 3})
    (progress,) = sent
    assert (progress.fraction, progress.note, progress.data) == (1.0, "done", {"rows": 3})
    assert progress.attempt == 2
    assert progress.updated_at is not None
    assert ctx.progress is progress
    assert progress.percent == 100.0


def test_the_envelope_round_trips_signed_and_is_never_dill() -> None:
    signed = Serializer(secret_key="k" * 32)
    progress = TaskProgress(fraction=0.25, note="n", data={"at": WHEN, "t": (1, 2)}, attempt=1)
    raw = signed.encode_progress(progress, "t-1")
    assert raw[0] & 0x7F == FORMAT_MSGPACK
    assert signed.decode_progress(raw, "t-1") == progress
    with pytest.raises(SignatureError, match="belongs to task 't-1'"):
        signed.decode_progress(raw, "t-2")  # copied into another task's record
    with pytest.raises(SignatureError):
        Serializer(secret_key="o" * 32).decode_progress(raw, "t-1")
    pickled = Serializer(allow_dill=True)._wrap(0x02, b"anything")
    with pytest.raises(SerializationError, match="not a msgpack payload"):
        Serializer(allow_dill=True).decode_progress(pickled, "t-1")


def test_a_task_that_never_reported_encodes_as_before() -> None:
    """Task.progress defaults to None and is left out of the payload (omit_defaults)."""
    serializer = Serializer()
    task = Task(func="operator:add", args=(1, 2), id="same")
    assert b"progress" not in serializer.encode_task(task)
    assert serializer.decode_task(serializer.encode_task(task)).progress is None
