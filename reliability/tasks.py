"""Task functions of the fault scenarios, importable by name so worker processes resolve them.

Every function that matters to a criterion leaves a trace *outside* OmniQ (a line appended to a file
of its own process), so the harness counts executions without trusting the store it is testing.
Appends use ``O_APPEND`` with one ``write`` per line, which the kernel keeps whole even when several
processes append to the same file.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

_FDS: dict[str, int] = {}


def _append(out_dir: str, line: str) -> None:
    path = os.path.join(out_dir, f"{os.getpid()}.log")
    fd = _FDS.get(path)
    if fd is None:
        fd = _FDS[path] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(fd, f"{line}\n".encode())


def read_records(out_dir: str) -> list[tuple[str, int]]:
    """Every ``(key, pid)`` written by :func:`_append` under ``out_dir``, in no particular order."""
    records: list[tuple[str, int]] = []
    if not os.path.isdir(out_dir):
        return records
    for name in os.listdir(out_dir):
        if not name.endswith(".log"):
            continue
        with open(os.path.join(out_dir, name)) as log:
            for line in log:
                key, _, pid = line.strip().rpartition(" ")
                if key:
                    records.append((key, int(pid)))
    return records


async def record(key: int, out_dir: str, work_ms: float = 0.0) -> int:
    """Works ``work_ms`` (an async sleep, so a kill often lands mid-task), then records one
    execution of ``key`` by this process and returns the key."""
    if work_ms:
        await asyncio.sleep(work_ms / 1000)
    _append(out_dir, f"{key} {os.getpid()}")
    return key


async def record_started(key: int, out_dir: str, work_ms: float = 0.0) -> int:
    """:func:`record`, and first the wall-clock time it started (``<pid>.starts``): the outage
    scenario reads when work resumed after the server came back."""
    path = os.path.join(out_dir, f"{os.getpid()}.starts")
    with open(path, "a") as starts:
        starts.write(f"{key} {time.time():.6f}\n")
    return await record(key, out_dir, work_ms)


def read_starts(out_dir: str) -> list[float]:
    """The start times written by :func:`record_started`, in no particular order."""
    times: list[float] = []
    for name in os.listdir(out_dir) if os.path.isdir(out_dir) else ():
        if name.endswith(".starts"):
            with open(os.path.join(out_dir, name)) as starts:
                times += [float(line.split()[1]) for line in starts if line.strip()]
    return times


def record_sync(key: int, out_dir: str) -> int:
    """:func:`record` for worker types that run sync functions (process pool)."""
    _append(out_dir, f"{key} {os.getpid()}")
    return key


async def hang_async(out_dir: str) -> None:
    """Hangs on the loop; writes ``cancelled`` when cancelled, which proves it was stopped rather
    than abandoned."""
    _append(out_dir, f"hang-started {os.getpid()}")
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        _append(out_dir, f"hang-cancelled {os.getpid()}")
        raise


def hang_sync(out_dir: str) -> None:
    """Hangs in a blocking call, which only killing its process can stop."""
    _append(out_dir, f"hang-started {os.getpid()}")
    time.sleep(3600)


def die(out_dir: str) -> None:
    """The poison task: records the attempt, then ends its process at once (no cleanup, no
    exception the worker could catch)."""
    _append(out_dir, f"die {os.getpid()}")
    os._exit(1)


def echo(value: str, out_dir: str) -> str:
    """Records and returns ``value``: the tampering scenario looks for a value it never sent."""
    _append(out_dir, f"echo:{value} {os.getpid()}")
    return value


def checksum(blob: bytes) -> str:
    """The SHA-256 of a large argument, to prove it arrived whole."""
    return hashlib.sha256(blob).hexdigest()
