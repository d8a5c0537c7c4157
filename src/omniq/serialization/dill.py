"""The fallback format: dill, for lambdas, closures, ``__main__`` functions and arbitrary objects.

Unpickling runs code, so the envelope layer only lets dill payloads through when they are signed,
or when the backend is local to this machine, or when the user opted in explicitly.
"""

from __future__ import annotations

from typing import Any

import dill


def dumps(obj: Any) -> bytes:
    data: bytes = dill.dumps(obj, protocol=dill.HIGHEST_PROTOCOL, recurse=False)
    return data


def loads(data: bytes | memoryview) -> Any:
    return dill.loads(bytes(data))
