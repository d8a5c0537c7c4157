"""Specification of the envelope serializer (ARCHITECTURE section 4)."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omniq.exceptions import SerializationError, SignatureError
from omniq.models.result import ResultStatus, TaskResult
from omniq.models.schedule import Schedule
from omniq.models.task import Task
from omniq.serialization import FLAG_SIGNED, FORMAT_DILL, FORMAT_MSGPACK, Serializer

FUNC = "os.path:join"
KEY = "correct horse battery staple"


@dataclass
class Point:
    x: int
    y: int


class _OtherTz(tzinfo):
    """A tzinfo class msgpack has no tag for (not ``timezone``, not ``ZoneInfo``)."""

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(hours=1)

    def __reduce__(self) -> tuple[type, tuple[()]]:
        return (_OtherTz, ())

    def __eq__(self, other: object) -> bool:
        return type(other) is _OtherTz

    def __hash__(self) -> int:
        return 1


class Custom:
    def __init__(self, value: int) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return type(other) is Custom and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)


def assert_identical(actual: Any, expected: Any) -> None:
    """Equal *and* of the same type all the way down (``True == 1`` and ``(1,) != [1]`` pitfalls)."""
    assert type(actual) is type(expected), f"{actual!r} is a {type(actual)}, not {type(expected)}"
    if isinstance(expected, list | tuple):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected, strict=True):
            assert_identical(a, e)
    elif isinstance(expected, dict):
        assert list(actual) == list(expected)
        for key in expected:
            assert_identical(actual[key], expected[key])
    else:
        assert actual == expected


def roundtrip_task(serializer: Serializer, task: Task) -> tuple[str, Task]:
    payload = serializer.encode_task(task)
    return serializer.format_of(payload), serializer.decode_task(payload)


def dill_payload() -> bytes:
    return Serializer(local=True).encode_task(Task(func=lambda: 1))  # type: ignore[arg-type]


# -- format choice ----------------------------------------------------------------------------


def test_task_with_plain_arguments_uses_msgpack() -> None:
    task = Task(func=FUNC, args=(1, "a", 2.5, None, True, b"x"), kwargs={"k": [1, {"n": 2}]})

    fmt, decoded = roundtrip_task(Serializer(), task)

    assert fmt == "msgpack"
    assert_identical(decoded.args, task.args)
    assert_identical(decoded.kwargs, task.kwargs)
    assert decoded.id == task.id
    assert decoded.func == FUNC


def test_task_with_a_utc_datetime_argument_uses_msgpack() -> None:
    when = datetime(2030, 1, 1, 12, tzinfo=UTC)

    fmt, decoded = roundtrip_task(Serializer(), Task(func=FUNC, args=(when,)))

    assert fmt == "msgpack"
    assert_identical(decoded.args, (when,))


def test_task_state_fields_survive_msgpack() -> None:
    task = Task(
        func=FUNC,
        queue_name="emails",
        priority=5,
        eta=datetime(2030, 1, 1, tzinfo=UTC),
        max_retries=3,
        retry_on=("builtins.ValueError",),
        depends_on=("a", "b"),
        metadata={"tenant": "acme"},
    )

    fmt, decoded = roundtrip_task(Serializer(), task)

    assert fmt == "msgpack"
    for field in task.__struct_fields__:
        assert getattr(decoded, field) == getattr(task, field), field


TAGGED_VALUES = [
    pytest.param([(1, 2)], id="tuple-nested-in-a-list"),
    pytest.param({"pair": (1, 2)}, id="tuple-nested-in-a-dict"),
    pytest.param((1, (2, (3,))), id="nested-tuples"),
    pytest.param({1, 2, 3}, id="set"),
    pytest.param(frozenset({"a"}), id="frozenset"),
    pytest.param({frozenset({1}): {(1, 2)}}, id="frozenset-key-set-of-tuples"),
    pytest.param(
        {(1, 2): "a", None: 1, 2.5: "f", True: "t"}, id="dict-with-tuple-none-float-bool-keys"
    ),
    pytest.param({2**70: "big key"}, id="dict-with-a-big-int-key"),
    pytest.param(datetime(2030, 1, 1, 12, 0), id="naive-datetime"),
    pytest.param(datetime(2030, 1, 1, 12, 0, 0, 7), id="naive-datetime-microseconds"),
    pytest.param(
        datetime(2030, 11, 3, 1, 30, tzinfo=ZoneInfo("America/New_York"), fold=1),
        id="zoned-datetime-fold",
    ),
    pytest.param(
        datetime(2030, 1, 1, tzinfo=timezone(timedelta(hours=-3), "BRT")), id="named-offset"
    ),
    pytest.param(date(2030, 1, 2), id="date"),
    pytest.param(time(23, 59, 58, 5), id="time"),
    pytest.param(time(8, 0, tzinfo=timezone(timedelta(minutes=330))), id="time-with-offset"),
    pytest.param(timedelta(days=-2, seconds=5, microseconds=3), id="timedelta"),
    pytest.param(Decimal("1.10"), id="decimal"),
    pytest.param(Decimal("-Infinity"), id="decimal-infinity"),
    pytest.param(uuid.UUID("12345678-1234-5678-1234-567812345678"), id="uuid"),
    pytest.param(2**64, id="int-just-beyond-64-bits"),
    pytest.param(2**100, id="big-int"),
    pytest.param(-(2**70), id="big-negative-int"),
    pytest.param(10**5000, id="int-beyond-the-str-conversion-limit"),
    pytest.param(3 - 4j, id="complex"),
    pytest.param(bytearray(b"\x00raw"), id="bytearray"),
    pytest.param((), id="empty-tuple"),
]


@pytest.mark.parametrize("value", TAGGED_VALUES)
def test_standard_types_msgpack_lacks_round_trip_as_tagged_msgpack_not_dill(value: Any) -> None:
    task = Task(func=FUNC, args=(value,), kwargs={"named": value}, metadata={"m": value})

    fmt, decoded = roundtrip_task(Serializer(local=False), task)

    assert fmt == "msgpack"
    assert_identical(decoded.args, (value,))
    assert_identical(decoded.kwargs, {"named": value})
    assert_identical(decoded.metadata, {"m": value})


@pytest.mark.parametrize("value", TAGGED_VALUES)
def test_results_and_values_of_standard_types_stay_msgpack(value: Any) -> None:
    serializer = Serializer(local=False)
    payload = serializer.encode_result(TaskResult(task_id="t", result=value))

    assert serializer.format_of(payload) == "msgpack"
    assert_identical(serializer.decode_result(payload).result, value)
    assert serializer.format_of(serializer.dumps(value)) == "msgpack"
    assert_identical(serializer.loads(serializer.dumps(value)), value)


def test_a_schedule_with_retry_on_and_tuple_arguments_stays_msgpack_on_a_network_backend() -> None:
    serializer = Serializer(local=False)
    schedule = Schedule(
        func=FUNC,
        args=((1, 2),),
        interval=5.0,
        task_options={"retry_on": (), "timeout": 3.0},
        metadata={"tags": {"a"}},
    )

    payload = serializer.encode_schedule(schedule)

    assert serializer.format_of(payload) == "msgpack"
    decoded = serializer.decode_schedule(payload)
    assert_identical(decoded.task_options, {"retry_on": (), "timeout": 3.0})
    assert_identical(decoded.args, ((1, 2),))
    assert_identical(decoded.metadata, {"tags": {"a"}})


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(Point(1, 2), id="dataclass"),
        pytest.param(Custom(7), id="custom-object"),
        pytest.param(ResultStatus.SUCCESS, id="str-enum"),
        pytest.param((1, Custom(2)), id="custom-object-inside-a-tuple"),
        pytest.param(datetime(2030, 1, 1, tzinfo=_OtherTz()), id="datetime-with-a-custom-tzinfo"),
    ],
)
def test_arguments_msgpack_cannot_carry_exactly_fall_back_to_dill_and_round_trip(
    value: Any,
) -> None:
    task = Task(func=FUNC, args=(value,), kwargs={"named": value})

    fmt, decoded = roundtrip_task(Serializer(), task)

    assert fmt == "dill"
    assert_identical(decoded.args, (value,))
    assert_identical(decoded.kwargs, {"named": value})


def test_metadata_with_a_non_string_key_falls_back_to_dill_rather_than_a_payload_that_cannot_decode() -> (
    None
):
    task = Task(func=FUNC, metadata={1: "one"})  # type: ignore[dict-item]

    fmt, decoded = roundtrip_task(Serializer(), task)

    assert fmt == "dill"
    assert decoded.metadata == {1: "one"}


@pytest.mark.parametrize("code", [0, 99, 127])
def test_an_unknown_extension_type_is_a_serialization_error(code: int) -> None:
    import msgspec

    body = msgspec.msgpack.encode(Task(func=FUNC, args=(msgspec.msgpack.Ext(code, b"x"),)))

    with pytest.raises(SerializationError, match=f"extension type {code}"):
        Serializer().decode_task(bytes((FORMAT_MSGPACK,)) + body)


def test_a_malformed_tagged_value_is_a_serialization_error() -> None:
    import msgspec

    from omniq.serialization.msgspec import Tag

    bad = msgspec.msgpack.Ext(int(Tag.DATE), b"not a date")
    body = msgspec.msgpack.encode(Task(func=FUNC, args=(bad,)))

    with pytest.raises(SerializationError, match="malformed date"):
        Serializer().decode_task(bytes((FORMAT_MSGPACK,)) + body)


def test_an_aware_non_utc_datetime_argument_keeps_its_utc_offset() -> None:
    when = datetime(2030, 1, 1, 10, 0, tzinfo=timezone(timedelta(hours=2)))

    _, decoded = roundtrip_task(Serializer(), Task(func=FUNC, args=(when,)))

    (got,) = decoded.args
    assert got == when
    assert got.utcoffset() == timedelta(hours=2)
    assert got.hour == 10


def test_metadata_values_keep_their_types() -> None:
    task = Task(func=FUNC, metadata={"pair": (1, 2)})

    _, decoded = roundtrip_task(Serializer(), task)

    assert_identical(decoded.metadata, {"pair": (1, 2)})


# -- callables without an importable name -----------------------------------------------------


def test_a_lambda_task_round_trips_through_dill_and_stays_callable() -> None:
    task = Task(func=lambda x: x * 2, args=(21,))  # type: ignore[arg-type]

    fmt, decoded = roundtrip_task(Serializer(), task)

    assert fmt == "dill"
    assert decoded.func == task.func
    assert decoded.func_obj(*decoded.args) == 42


def test_a_closure_task_round_trips_through_dill_with_its_captured_value() -> None:
    offset = 100

    def add_offset(x: int) -> int:
        return x + offset

    fmt, decoded = roundtrip_task(Serializer(), Task(func=add_offset, args=(1,)))  # type: ignore[arg-type]

    assert fmt == "dill"
    assert decoded.func_obj(1) == 101


def test_a_function_defined_inside_a_test_round_trips_through_dill() -> None:
    def shout(text: str) -> str:
        return text.upper() + "!"

    fmt, decoded = roundtrip_task(Serializer(), Task(func=shout, args=("hi",)))  # type: ignore[arg-type]

    assert fmt == "dill"
    assert decoded.func.endswith("shout")
    assert decoded.func_obj("hi") == "HI!"


def test_a_schedule_with_a_lambda_round_trips_through_dill() -> None:
    serializer = Serializer()
    schedule = Schedule(func=lambda: "tick", interval=5.0)  # type: ignore[arg-type]

    payload = serializer.encode_schedule(schedule)
    decoded = serializer.decode_schedule(payload)

    assert serializer.format_of(payload) == "dill"
    assert decoded.func_obj() == "tick"
    assert decoded.interval == 5.0


# -- signing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload_of",
    [
        pytest.param(lambda s: s.encode_task(Task(func=FUNC, args=(1,))), id="msgpack-task"),
        pytest.param(
            lambda s: s.encode_task(Task(func=lambda: 1)),  # type: ignore[arg-type]
            id="dill-task",
        ),
        pytest.param(lambda s: s.encode_result(TaskResult(task_id="t", result=1)), id="result"),
        pytest.param(lambda s: s.encode_schedule(Schedule(func=FUNC, interval=1.0)), id="schedule"),
        pytest.param(lambda s: s.dumps({"a": 1}), id="msgpack-value"),
        pytest.param(lambda s: s.dumps(Custom(2)), id="dill-value"),
    ],
)
def test_with_a_secret_key_every_envelope_is_signed(payload_of: Any) -> None:
    serializer = Serializer(KEY)

    payload: bytes = payload_of(serializer)

    assert payload[0] & FLAG_SIGNED
    assert serializer.signed


def test_a_signed_task_decodes_with_the_same_key() -> None:
    task = Task(func=FUNC, args=(1, 2))

    decoded = Serializer(KEY).decode_task(Serializer(KEY).encode_task(task))

    assert decoded.args == (1, 2)


def test_a_signed_dill_task_decodes_with_the_same_key_on_a_network_backend() -> None:
    task = Task(func=lambda: "ok")  # type: ignore[arg-type]
    payload = Serializer(KEY, local=False).encode_task(task)

    assert Serializer(KEY, local=False).decode_task(payload).func_obj() == "ok"


@pytest.mark.parametrize("args", [(1,), (Custom(2),)], ids=["msgpack", "dill"])
def test_a_payload_signed_with_another_key_is_refused(args: tuple[Any, ...]) -> None:
    payload = Serializer("another key").encode_task(Task(func=FUNC, args=args))

    with pytest.raises(SignatureError):
        Serializer(KEY).decode_task(payload)


@pytest.mark.parametrize("args", [(1,), (Custom(2),)], ids=["msgpack", "dill"])
def test_an_unsigned_payload_is_refused_when_a_key_is_set(args: tuple[Any, ...]) -> None:
    payload = Serializer().encode_task(Task(func=FUNC, args=args))

    with pytest.raises(SignatureError, match="unsigned"):
        Serializer(KEY).decode_task(payload)


@pytest.mark.parametrize("args", [(1,), (Custom(2),)], ids=["msgpack", "dill"])
def test_a_signed_payload_with_one_flipped_body_byte_is_refused(args: tuple[Any, ...]) -> None:
    serializer = Serializer(KEY)
    payload = bytearray(serializer.encode_task(Task(func=FUNC, args=args)))
    payload[-1] ^= 0x01

    with pytest.raises(SignatureError):
        serializer.decode_task(bytes(payload))


def test_a_signed_payload_with_a_flipped_mac_byte_is_refused() -> None:
    serializer = Serializer(KEY)
    payload = bytearray(serializer.encode_task(Task(func=FUNC)))
    payload[1] ^= 0x01

    with pytest.raises(SignatureError):
        serializer.decode_task(bytes(payload))


def test_a_signed_payload_whose_format_byte_was_changed_is_refused_as_tampered() -> None:
    serializer = Serializer(KEY)
    payload = bytearray(serializer.encode_task(Task(func=FUNC, args=(1,))))
    assert payload[0] == FORMAT_MSGPACK | FLAG_SIGNED
    payload[0] = FORMAT_DILL | FLAG_SIGNED  # the header is part of what was signed

    with pytest.raises(SignatureError):
        serializer.decode_task(bytes(payload))


def test_a_signed_payload_truncated_inside_its_mac_is_refused() -> None:
    serializer = Serializer(KEY)
    payload = serializer.encode_task(Task(func=FUNC))

    with pytest.raises(SignatureError):
        serializer.decode_task(payload[:10])


# -- the dill policy without a key ------------------------------------------------------------


def test_without_a_key_a_local_backend_accepts_dill() -> None:
    serializer = Serializer(local=True)

    fmt, decoded = roundtrip_task(serializer, Task(func=lambda: "local"))  # type: ignore[arg-type]

    assert fmt == "dill"
    assert decoded.func_obj() == "local"


def test_without_a_key_a_network_backend_refuses_to_encode_a_lambda_task() -> None:
    serializer = Serializer(local=False)

    with pytest.raises(SerializationError) as excinfo:
        serializer.encode_task(Task(func=lambda: 1))  # type: ignore[arg-type]

    assert "SECRET_KEY" in str(excinfo.value)
    assert "allow_dill" in str(excinfo.value)


def test_without_a_key_a_network_backend_refuses_to_decode_an_unsigned_dill_payload() -> None:
    with pytest.raises(SerializationError, match="SECRET_KEY"):
        Serializer(local=False).decode_task(dill_payload())


def test_without_a_key_a_network_backend_still_accepts_msgpack() -> None:
    fmt, decoded = roundtrip_task(Serializer(local=False), Task(func=FUNC, args=(1,)))

    assert fmt == "msgpack"
    assert decoded.args == (1,)


def test_allow_dill_opts_a_network_backend_into_dill() -> None:
    serializer = Serializer(local=False, allow_dill=True)

    fmt, decoded = roundtrip_task(serializer, Task(func=lambda: "opted in"))  # type: ignore[arg-type]

    assert fmt == "dill"
    assert decoded.func_obj() == "opted in"


def test_allow_dill_false_refuses_dill_even_on_a_local_backend() -> None:
    with pytest.raises(SerializationError, match="allow_dill"):
        Serializer(local=True, allow_dill=False).encode_task(Task(func=lambda: 1))  # type: ignore[arg-type]


def test_a_refused_dill_argument_is_named_in_the_error() -> None:
    with pytest.raises(SerializationError, match=r"args\[1\]"):
        Serializer(local=False).encode_task(Task(func=FUNC, args=(1, Custom(3))))


def test_a_refused_argument_nested_in_a_tuple_is_named_in_the_error() -> None:
    with pytest.raises(SerializationError, match=r"args\[0\]"):
        Serializer(local=False).encode_task(Task(func=FUNC, args=((1, Point(1, 2)),)))


# -- arguments that cannot be serialized at all -----------------------------------------------


def generator() -> Iterator[int]:
    yield 1


def test_a_generator_argument_is_refused_naming_its_position() -> None:
    with pytest.raises(SerializationError, match=r"args\[1\]"):
        Serializer().encode_task(Task(func=FUNC, args=(1, generator())))


def test_an_open_socket_keyword_argument_is_refused_naming_it() -> None:
    with socket.socket() as sock, pytest.raises(SerializationError, match=r"kwargs\['conn'\]"):
        Serializer().encode_task(Task(func=FUNC, kwargs={"ok": 1, "conn": sock}))


def test_a_lock_argument_is_refused_naming_its_position() -> None:
    # a lock only means something inside the process that holds it
    with pytest.raises(SerializationError, match=r"args\[0\]"):
        Serializer().encode_task(Task(func=FUNC, args=(threading.Lock(),)))


def test_an_unpicklable_result_is_refused_with_a_serialization_error() -> None:
    with pytest.raises(SerializationError, match="generator"):
        Serializer().encode_result(TaskResult(task_id="t", result=generator()))


# -- corrupted payloads -----------------------------------------------------------------------


def valid_payloads() -> list[bytes]:
    return [Serializer().encode_task(Task(func=FUNC, args=(1, "two"))), dill_payload()]


def test_an_empty_payload_is_a_serialization_error() -> None:
    with pytest.raises(SerializationError, match="empty"):
        Serializer().decode_task(b"")


@pytest.mark.parametrize("header", [0x00, 0x03, 0x0F, 0x7F, 0xFF])
def test_an_unknown_format_byte_is_a_serialization_error(header: int) -> None:
    with pytest.raises(SerializationError, match="format"):
        Serializer().decode_task(bytes((header,)) + b"\x90")


@pytest.mark.parametrize("payload", valid_payloads(), ids=["msgpack", "dill"])
def test_every_truncation_of_a_payload_is_a_serialization_error(payload: bytes) -> None:
    serializer = Serializer()
    for end in range(len(payload)):
        with pytest.raises(SerializationError):
            serializer.decode_task(payload[:end])


@pytest.mark.parametrize("header", [FORMAT_MSGPACK, FORMAT_DILL])
def test_random_bytes_are_a_serialization_error(header: int) -> None:
    serializer = Serializer()
    rng = __import__("random").Random(1234)
    for _ in range(200):
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        with pytest.raises(SerializationError):
            serializer.decode_task(bytes((header,)) + body)


def test_a_msgpack_payload_of_the_wrong_shape_is_a_serialization_error() -> None:
    serializer = Serializer()
    not_a_task = serializer.dumps({"hello": "world"})

    with pytest.raises(SerializationError):
        serializer.decode_task(not_a_task)


def test_a_dill_payload_of_the_wrong_type_is_a_serialization_error() -> None:
    serializer = Serializer()
    not_a_task = serializer.dumps(Custom(1))

    with pytest.raises(SerializationError, match="Custom"):
        serializer.decode_task(not_a_task)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_to_a_task_or_raise_serialization_error(data: bytes) -> None:
    # a network serializer refuses dill before unpickling, so arbitrary bytes never run pickle code
    try:
        task = Serializer(local=False).decode_task(data)
    except SerializationError:
        return
    assert isinstance(task, Task)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_msgpack_bodies_decode_to_a_task_or_raise_serialization_error(
    body: bytes,
) -> None:
    try:
        task = Serializer().decode_task(bytes((FORMAT_MSGPACK,)) + body)
    except SerializationError:
        return
    assert isinstance(task, Task)


def test_format_of_an_empty_payload_is_unknown() -> None:
    assert Serializer().format_of(b"") == "unknown"


# -- results and plain values -----------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="none"),
        pytest.param({"output": "Hello, World!"}, id="dict"),
        pytest.param([1, 2.5, "x", b"y", None], id="list"),
        pytest.param((1, 2), id="tuple"),
        pytest.param({1, 2}, id="set"),
        pytest.param(Point(3, 4), id="dataclass"),
        pytest.param(Custom(5), id="custom-object"),
        pytest.param(Decimal("3.14"), id="decimal"),
        pytest.param(2**80, id="big-int"),
        pytest.param(datetime(2030, 1, 1), id="naive-datetime"),
    ],
)
def test_results_round_trip_with_their_exact_value(value: Any) -> None:
    serializer = Serializer()
    result = TaskResult(
        task_id="t", status=ResultStatus.SUCCESS, result=value, ttl=timedelta(hours=1)
    )

    decoded = serializer.decode_result(serializer.encode_result(result))

    assert_identical(decoded.result, value)
    assert decoded.task_id == "t"
    assert decoded.status is ResultStatus.SUCCESS
    assert decoded.ttl == timedelta(hours=1)
    assert decoded.expires_at == result.expires_at


def test_an_error_result_round_trips_its_error_fields() -> None:
    serializer = Serializer(KEY)
    result = TaskResult(
        task_id="t",
        status=ResultStatus.ERROR,
        error="boom",
        error_type="ValueError",
        traceback="tb",
    )

    decoded = serializer.decode_result(serializer.encode_result(result))

    assert (decoded.status, decoded.error, decoded.error_type, decoded.traceback) == (
        ResultStatus.ERROR,
        "boom",
        "ValueError",
        "tb",
    )


@pytest.mark.parametrize(
    "value",
    [
        pytest.param({"a": [1, 2]}, id="json-like"),
        pytest.param((1, "a"), id="tuple"),
        pytest.param({"k": frozenset({1})}, id="frozenset-in-dict"),
        pytest.param(Custom(1), id="custom-object"),
        pytest.param(2**70, id="big-int"),
        pytest.param(-(2**64), id="big-negative-int"),
    ],
)
def test_dumps_and_loads_round_trip(value: Any) -> None:
    serializer = Serializer()

    assert_identical(serializer.loads(serializer.dumps(value)), value)


def test_a_signed_dumps_payload_loads_with_the_same_key_only() -> None:
    payload = Serializer(KEY).dumps([1, 2, 3])

    assert Serializer(KEY).loads(payload) == [1, 2, 3]
    with pytest.raises(SignatureError):
        Serializer("other").loads(payload)


# -- properties -------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
)
json_like = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=16,
)


@settings(max_examples=200, deadline=None)
@given(
    args=st.lists(json_like, max_size=4),
    kwargs=st.dictionaries(st.text(max_size=8), json_like, max_size=4),
)
def test_json_like_arguments_round_trip_exactly_through_msgpack(
    args: list[Any], kwargs: dict[str, Any]
) -> None:
    serializer = Serializer()
    task = Task(func=FUNC, args=tuple(args), kwargs=kwargs)

    fmt, decoded = roundtrip_task(serializer, task)

    assert fmt == "msgpack"
    assert_identical(decoded.args, tuple(args))
    assert_identical(decoded.kwargs, kwargs)


@settings(max_examples=100, deadline=None)
@given(
    value=st.recursive(
        json_scalars | st.integers(),
        lambda children: (
            st.lists(children, max_size=3)
            | st.lists(children, max_size=3).map(tuple)
            | st.dictionaries(st.text(max_size=4), children, max_size=3)
        ),
        max_leaves=10,
    )
)
def test_any_value_of_builtin_types_round_trips_as_a_task_argument(value: Any) -> None:
    serializer = Serializer(KEY)

    _, decoded = roundtrip_task(serializer, Task(func=FUNC, args=(value,)))

    assert_identical(decoded.args, (value,))


@settings(max_examples=100, deadline=None)
@given(value=json_like)
def test_json_like_results_round_trip_through_msgpack(value: Any) -> None:
    serializer = Serializer()
    payload = serializer.encode_result(TaskResult(task_id="t", result=value))

    assert serializer.format_of(payload) == "msgpack"
    assert_identical(serializer.decode_result(payload).result, value)


def test_random_key_material_as_bytes_signs_too() -> None:
    serializer = Serializer(os.urandom(32))

    payload = serializer.encode_task(Task(func=FUNC))

    assert payload[0] & FLAG_SIGNED
    assert serializer.decode_task(payload).func == FUNC
