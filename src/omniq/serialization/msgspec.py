"""The fast, safe default format: msgpack through msgspec.

Only values that come back *exactly* as they went in are sent this way. msgpack itself knows lists,
maps, strings, bytes, numbers and UTC timestamps; every other standard type a task commonly takes
(tuples, sets, frozensets, naive or zoned datetimes, dates, times, timedeltas, decimals, UUIDs,
big ints, complex numbers, maps with tuple keys) travels as a msgpack *extension* whose type code
says what to rebuild (:class:`Tag`). Decoding such an extension only ever builds one of these
standard types, so it runs no code of the sender's choosing. Anything else (a dataclass, an enum
member, an arbitrary object) is not taggable and goes to dill, so a task never receives different
arguments than it was given.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from msgspec.msgpack import Ext

_SCALARS = (str, float, bool, bytes, type(None))
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # msgpack's integer range
_MAX_DEPTH = 64


class Tag(enum.IntEnum):
    """msgpack extension type codes of OmniQ's tagged values (msgspec owns -1, timestamps).

    Codes are stored in payloads: never renumber one, only add."""

    TUPLE = 1
    SET = 2
    FROZENSET = 3
    DATETIME = 4  # [naive ISO text, fold, zone] for a naive, fixed-offset or IANA-zoned datetime
    DATE = 5
    TIME = 6  # [naive ISO text, fold, zone]
    TIMEDELTA = 7  # [days, seconds, microseconds]
    DECIMAL = 8
    UUID = 9
    BIGINT = 10  # an int beyond msgpack's 64 bits, as signed big-endian bytes
    COMPLEX = 11
    BYTEARRAY = 12
    PAIRS = 13  # a dict whose keys msgpack maps cannot carry (tuples, floats, None...)


# plain ints for Ext(), which refuses int subclasses
_BIGINT, _DATE, _DECIMAL, _UUID, _BYTEARRAY = (
    int(t) for t in (Tag.BIGINT, Tag.DATE, Tag.DECIMAL, Tag.UUID, Tag.BYTEARRAY)
)


class Untaggable(Exception):
    """A value msgpack cannot carry exactly; the caller falls back to dill."""


def is_lossless(value: Any, _depth: int = 0) -> bool:
    """True when plain msgpack (no extension) round-trips ``value`` to an equal object of the same
    types: the values the hot path encodes without a second look."""
    kind = type(value)
    if kind is int:
        return bool(_INT_MIN <= value <= _INT_MAX)
    if kind in _SCALARS:
        return True
    if _depth > _MAX_DEPTH:
        return False
    if kind is list:
        return all(is_lossless(v, _depth + 1) for v in value)
    if kind is dict:
        return all(
            type(k) in (str, int, bytes) and is_lossless(k) and is_lossless(v, _depth + 1)
            for k, v in value.items()
        )
    if kind is datetime:
        # msgpack timestamps come back in UTC: other offsets (or zoneinfo objects) are tagged
        return value.tzinfo is UTC
    return False


def args_are_lossless(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    # top-level args are a typed tuple and kwargs a typed dict: both round-trip as themselves.
    # Plain loops, not all(<generator>): this runs for every task enqueued.
    for a in args:
        if not is_lossless(a):
            return False
    return not kwargs or all(is_lossless(v) for v in kwargs.values())


class MsgspecCodec:
    """Typed msgpack encoders/decoders, built once per type, that understand :class:`Tag`."""

    def __init__(self) -> None:
        self._encoder = msgspec.msgpack.Encoder()
        self._decoders: dict[Any, msgspec.msgpack.Decoder[Any]] = {}
        self._any = self._decoder(Any)

    def encode(self, obj: Any) -> bytes:
        return self._encoder.encode(obj)

    def decode(self, data: bytes | memoryview, type_: Any = Any) -> Any:
        return self._decoder(type_).decode(data)

    def _decoder(self, type_: Any) -> msgspec.msgpack.Decoder[Any]:
        decoder = self._decoders.get(type_)
        if decoder is None:
            decoder = self._decoders[type_] = msgspec.msgpack.Decoder(type_, ext_hook=self._untag)
        return decoder

    # -- tagging -----------------------------------------------------------------------------
    def tag(self, value: Any, _depth: int = 0) -> Any:
        """``value`` with every non-msgpack standard value replaced by its extension; the very
        same object when nothing needed a tag (the common case costs no copy). Raises
        :class:`Untaggable` for a value only dill can carry."""
        kind = type(value)
        if kind is int:
            if _INT_MIN <= value <= _INT_MAX:
                return value
            # bytes, not decimal text: Python caps int/str conversions at 4,300 digits
            size = (value.bit_length() + 8) // 8
            return Ext(_BIGINT, value.to_bytes(size, "big", signed=True))
        if kind in _SCALARS:
            return value
        if _depth > _MAX_DEPTH:
            raise Untaggable(f"nested deeper than {_MAX_DEPTH} levels")
        depth = _depth + 1
        if kind is list:
            items = [self.tag(v, depth) for v in value]
            return value if all(a is b for a, b in zip(items, value, strict=True)) else items
        if kind is dict:
            return self.tag_dict(value, depth)
        if kind is tuple:
            return self._seq(Tag.TUPLE, value, depth)
        if kind is set:
            return self._seq(Tag.SET, value, depth)
        if kind is frozenset:
            return self._seq(Tag.FROZENSET, value, depth)
        if kind is datetime:
            if value.tzinfo is UTC:
                return value
            naive = value.replace(tzinfo=None).isoformat()
            return self._ext(Tag.DATETIME, [naive, value.fold, _zone(value.tzinfo)])
        if kind is date:
            return Ext(_DATE, value.isoformat().encode())
        if kind is time:
            naive = value.replace(tzinfo=None).isoformat()
            return self._ext(Tag.TIME, [naive, value.fold, _zone(value.tzinfo)])
        if kind is timedelta:
            return self._ext(Tag.TIMEDELTA, [value.days, value.seconds, value.microseconds])
        if kind is Decimal:
            return Ext(_DECIMAL, str(value).encode())
        if kind is uuid.UUID:
            return Ext(_UUID, value.bytes)
        if kind is complex:
            return self._ext(Tag.COMPLEX, [value.real, value.imag])
        if kind is bytearray:
            return Ext(_BYTEARRAY, bytes(value))
        raise Untaggable(f"a {kind.__qualname__} has no msgpack form")

    def tag_dict(self, value: dict[Any, Any], _depth: int = 0) -> Any:
        """A dict's values tagged (keys stay as they are when msgpack maps carry them)."""
        if all(type(k) in (str, bytes) or (type(k) is int and is_lossless(k)) for k in value):
            tagged = {k: self.tag(v, _depth) for k, v in value.items()}
            if all(tagged[k] is v for k, v in value.items()):
                return value
            return tagged
        pairs = [[self.tag(k, _depth), self.tag(v, _depth)] for k, v in value.items()]
        return self._ext(Tag.PAIRS, pairs)

    def tag_fields(self, value: dict[str, Any]) -> dict[str, Any]:
        """The values of a struct field typed ``dict[str, Any]`` (kwargs, metadata) tagged; its
        keys must stay strings, or the typed decoder would refuse the payload later."""
        for key in value:
            if type(key) is not str:
                raise Untaggable(f"key {key!r} of a {type(key).__qualname__} in a str-keyed field")
        tagged: dict[str, Any] = self.tag_dict(value, 1)
        return tagged

    def carries(self, value: Any) -> bool:
        """Whether msgpack (with tags) carries ``value`` exactly."""
        try:
            self.tag(value)
        except Untaggable:
            return False
        return True

    def tag_items(self, values: tuple[Any, ...]) -> tuple[Any, ...]:
        """The members of a typed tuple (a task's ``args``) tagged; the tuple itself stays."""
        tagged = tuple(self.tag(v, 1) for v in values)
        return values if all(a is b for a, b in zip(tagged, values, strict=True)) else tagged

    def _seq(self, code: Tag, items: Any, depth: int) -> Ext:
        return self._ext(code, [self.tag(v, depth) for v in items])

    def _ext(self, code: Tag, body: Any) -> Ext:
        return Ext(int(code), self._encoder.encode(body))

    # -- untagging -----------------------------------------------------------------------------
    def _untag(self, code: int, data: memoryview) -> Any:
        try:
            tag = Tag(code)
        except ValueError:
            raise msgspec.DecodeError(f"unknown msgpack extension type {code}") from None
        try:
            return _BUILDERS[tag](self, data)
        except msgspec.DecodeError:
            raise
        except (TypeError, ValueError, KeyError, ArithmeticError) as exc:
            raise msgspec.DecodeError(f"malformed {tag.name.lower()} extension: {exc}") from exc

    def _body(self, data: memoryview) -> Any:
        return self._any.decode(data)


def _zone(tz: Any) -> Any:
    """A time zone as data: None (naive), ``[seconds, microseconds, name]`` for a fixed offset,
    or the IANA key of a ``ZoneInfo``. Any other tzinfo class is not taggable."""
    if tz is None:
        return None
    if type(tz) is timezone:
        offset = tz.utcoffset(None)
        default = timezone(offset)
        name = tz.tzname(None)
        explicit = None if name == default.tzname(None) else name
        return [offset.days * 86400 + offset.seconds, offset.microseconds, explicit]
    if type(tz) is ZoneInfo and tz.key is not None:
        return str(tz.key)
    raise Untaggable(f"a {type(tz).__qualname__} time zone has no msgpack form")


def _tz_of(data: Any) -> Any:
    if data is None:
        return None
    if isinstance(data, str):
        return ZoneInfo(data)
    seconds, micros, name = data
    offset = timedelta(seconds=seconds, microseconds=micros)
    return timezone(offset) if name is None else timezone(offset, name)


def _datetime(codec: MsgspecCodec, data: memoryview) -> datetime:
    text, fold, zone = codec._body(data)
    return datetime.fromisoformat(text).replace(tzinfo=_tz_of(zone), fold=fold)


def _time(codec: MsgspecCodec, data: memoryview) -> time:
    text, fold, zone = codec._body(data)
    return time.fromisoformat(text).replace(tzinfo=_tz_of(zone), fold=fold)


def _timedelta(codec: MsgspecCodec, data: memoryview) -> timedelta:
    days, seconds, micros = codec._body(data)
    return timedelta(days=days, seconds=seconds, microseconds=micros)


def _complex(codec: MsgspecCodec, data: memoryview) -> complex:
    real, imag = codec._body(data)
    return complex(real, imag)


_BUILDERS: dict[Tag, Any] = {
    Tag.TUPLE: lambda c, d: tuple(c._body(d)),
    Tag.SET: lambda c, d: set(c._body(d)),
    Tag.FROZENSET: lambda c, d: frozenset(c._body(d)),
    Tag.DATETIME: _datetime,
    Tag.DATE: lambda c, d: date.fromisoformat(bytes(d).decode()),
    Tag.TIME: _time,
    Tag.TIMEDELTA: _timedelta,
    Tag.DECIMAL: lambda c, d: Decimal(bytes(d).decode()),
    Tag.UUID: lambda c, d: uuid.UUID(bytes=bytes(d)),
    Tag.BIGINT: lambda c, d: int.from_bytes(d, "big", signed=True),
    Tag.COMPLEX: _complex,
    Tag.BYTEARRAY: lambda c, d: bytearray(d),
    Tag.PAIRS: lambda c, d: {k: v for k, v in c._body(d)},
}
