"""Time-ordered task ids (UUIDv7, RFC 9562).

Ids sort by creation time, which keeps B-tree inserts local on SQL backends and gives a natural
enqueue order. Within one millisecond a 12-bit counter keeps ids of one process strictly increasing.
"""

from __future__ import annotations

import os
import threading
import time

_lock = threading.Lock()
_last_ms = 0
_counter = 0
#: random bits from the OS, read 4 KiB at a time: one ``urandom`` call per id was a third of
#: the cost of an id (a system call each); consumed under ``_lock``, dropped in a forked child
_RANDOM_CHUNK = 4096
_random = b""
_offset = 0


def _forget_random() -> None:
    """A forked child must not hand out its parent's remaining bits (the same ids twice)."""
    global _random, _offset
    _random, _offset = b"", 0


os.register_at_fork(after_in_child=_forget_random)


def new_id() -> str:
    global _last_ms, _counter, _random, _offset
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms += 1
                _counter = 0
            ms = _last_ms
        else:
            _last_ms = ms
            _counter = 0
        counter = _counter
        if _offset + 8 > len(_random):
            _random, _offset = os.urandom(_RANDOM_CHUNK), 0
        rand = int.from_bytes(_random[_offset : _offset + 8], "big") & 0x3FFF_FFFF_FFFF_FFFF
        _offset += 8
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
