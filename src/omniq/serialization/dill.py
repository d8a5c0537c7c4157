"""The fallback format: dill, for lambdas, closures, ``__main__`` functions and arbitrary objects.

Unpickling runs code, so the envelope layer only lets dill payloads through when they are signed,
or when the backend is local to this machine, or when the user opted in explicitly.
"""

from __future__ import annotations

from typing import Any

# dill is imported by the first payload that needs it, not with the library: most processes
# (every worker of msgpack tasks) never do, and it costs a worker's start a few tens of ms.


def dumps(obj: Any) -> bytes:
    import dill

    data: bytes = dill.dumps(obj, protocol=dill.HIGHEST_PROTOCOL, recurse=False)
    return data


def loads(data: bytes | memoryview) -> Any:
    import dill

    return dill.loads(bytes(data))
