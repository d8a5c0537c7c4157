"""The fast, safe default format: msgpack through msgspec.

Only values that come back *exactly* as they went in are sent this way; anything msgspec would
silently turn into something else (a tuple into a list, a dataclass into a dict, a set into a list)
goes to dill instead, so a task never receives different arguments than it was given.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

_SCALARS = (str, float, bool, bytes, type(None))
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # msgpack's integer range


def is_lossless(value: Any, _depth: int = 0) -> bool:
    """True when msgpack round-trips ``value`` to an equal object of the same types."""
    kind = type(value)
    if kind is int:
        return bool(_INT_MIN <= value <= _INT_MAX)
    if kind in _SCALARS:
        return True
    if _depth > 64:
        return False
    if kind is list:
        return all(is_lossless(v, _depth + 1) for v in value)
    if kind is dict:
        return all(
            type(k) in (str, int, bytes) and is_lossless(k) and is_lossless(v, _depth + 1)
            for k, v in value.items()
        )
    if kind is datetime:
        # msgpack timestamps come back in UTC: other offsets (or zoneinfo objects) would change
        return value.tzinfo is UTC
    return False


def args_are_lossless(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    # top-level args are a typed tuple and kwargs a typed dict: both round-trip as themselves
    return all(is_lossless(a) for a in args) and all(is_lossless(v) for v in kwargs.values())


class MsgspecCodec:
    """Typed msgpack encoders/decoders, built once per type."""

    def __init__(self) -> None:
        self._encoder = msgspec.msgpack.Encoder()
        self._decoders: dict[Any, msgspec.msgpack.Decoder[Any]] = {}

    def encode(self, obj: Any) -> bytes:
        return self._encoder.encode(obj)

    def decode(self, data: bytes | memoryview, type_: Any = Any) -> Any:
        decoder = self._decoders.get(type_)
        if decoder is None:
            decoder = self._decoders[type_] = msgspec.msgpack.Decoder(type_)
        return decoder.decode(data)
