"""HMAC-SHA256 signing of envelopes: a payload from storage is trusted only if its MAC verifies."""

from __future__ import annotations

import hashlib
import hmac

MAC_SIZE = 32


def as_key(secret_key: str | bytes | None) -> bytes | None:
    if secret_key is None or secret_key == "" or secret_key == b"":
        return None
    return secret_key.encode() if isinstance(secret_key, str) else bytes(secret_key)


def sign(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def verify(key: bytes, data: bytes, mac: bytes) -> bool:
    return hmac.compare_digest(sign(key, data), mac)
