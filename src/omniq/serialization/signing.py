"""HMAC-SHA256 signing of envelopes: a payload from storage is trusted only if its MAC verifies."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path

from omniq.exceptions import ConfigError

MAC_SIZE = 32


def as_key(secret_key: str | bytes | None) -> bytes | None:
    if secret_key is None or secret_key == "" or secret_key == b"":
        return None
    return secret_key.encode() if isinstance(secret_key, str) else bytes(secret_key)


def sign(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def verify(key: bytes, data: bytes, mac: bytes) -> bool:
    return hmac.compare_digest(sign(key, data), mac)


def local_key(path: Path) -> bytes:
    """The key kept in ``path``, made on first use: 32 random bytes (hex), readable by the owner
    only (0600). Processes racing to make it agree on one: each writes a private file and links
    it into place, and the first link wins."""
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, draft = tempfile.mkstemp(dir=path.parent, prefix=".omniq-key-")  # created 0600
    try:
        os.write(fd, secrets.token_hex(32).encode())
        os.fsync(fd)
        os.close(fd)
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
    finally:
        os.unlink(draft)
    return _read_key(path)


#: permission bits a store's key file must not have: any access by other users, and writing by
#: the group (0600 as made; 0640 is accepted for a group of users that share one store, whose
#: producers need the key to sign)
_TOO_OPEN = 0o027


def _read_key(path: Path) -> bytes:
    """The key in ``path``, refused when other users may read or change it: whoever can read
    it signs payloads every worker of the store then trusts, dill ones included (code)."""
    if os.name == "posix":
        mode = path.stat().st_mode & 0o777
        if mode & _TOO_OPEN:
            raise ConfigError(
                f"the store's key file {str(path)!r} is open to other users (mode {mode:04o}): "
                "whoever can read it can sign payloads that make workers run code; restrict it "
                f"with `chmod 600 {path}` (or 640 for a group of users sharing the store)"
            )
    text = path.read_text().strip()
    if len(text) < 32:
        raise ConfigError(f"the store's key file {str(path)!r} is damaged (too short)")
    return text.encode()
