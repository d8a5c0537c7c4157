"""How every contender's no-op task records its completion: one 20-byte append to a shared file.

The same mechanism for every library (PERFORMANCE.md: "the task's only work is to record its
completion, identical for every library"). An ``O_APPEND`` write of a few bytes to a local file is
atomic across processes and threads and costs a couple of microseconds, so it neither caps nor
favours anyone, whereas a Redis ``INCR`` would add a network round trip per task (about a tenth of
a millisecond here) and tie the SQLite and PostgreSQL contenders to Redis. Each record is the
completion time (``CLOCK_MONOTONIC``, which all processes of one machine share), the pid and the
task's argument, so the harness reads exact first and last completion times, which processes did
the work, and, when the argument is the enqueue time (``--mode paced``), each task's enqueue ->
start latency (the task does nothing before recording).

The start gate: worker processes start at different speeds (0.5 to 7 s here), and with N tasks
pre-enqueued the first process up would drain most of them alone, so a "2 processes" figure would
mostly measure one. So the first task each process runs checks in (its process group, appended to
``<gate>.ready``) and waits until the harness creates the gate file, which it does once every
worker has checked in. Groups, not pids: the harness starts each worker in a session of its own,
and a worker's pool children (Celery prefork, OmniQ's process type) share its group, so two
children of one worker do not pass for two workers. After that the check costs one global lookup per task.

Standard library only: this module runs inside every peer's virtualenv.
"""

from __future__ import annotations

import os
import struct
import time

#: environment variable naming the file the completions are appended to
DONE_FILE_ENV = "OMNIQ_BENCH_DONE_FILE"
#: environment variable naming the gate file (optional: no gate when unset)
GATE_ENV = "OMNIQ_BENCH_GATE"
RECORD = struct.Struct("<qiq")  # monotonic_ns at completion, pid, the task's argument
PGID = struct.Struct("<i")

_fd: int | None = None
_gate_open = False


def record(arg: int = 0) -> None:
    """Appends one completion record carrying ``arg`` (the task's own argument). The file is
    opened on first use in each process (after any fork), so pool children of Celery, Dramatiq
    or OmniQ's process worker each hold their own."""
    global _fd
    if not _gate_open:
        _wait_for_gate()
    if _fd is None:
        _fd = os.open(os.environ[DONE_FILE_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(_fd, RECORD.pack(time.monotonic_ns(), os.getpid(), arg))


def _wait_for_gate() -> None:
    """Checks this process in and blocks it (on purpose, event loop included) until the gate
    opens. Every thread that gets here before then checks in and waits too."""
    global _gate_open
    gate = os.environ.get(GATE_ENV)
    if gate:
        fd = os.open(gate + ".ready", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, PGID.pack(os.getpgid(0)))
        finally:
            os.close(fd)
        while not os.path.exists(gate):
            time.sleep(0.001)
    _gate_open = True


def read(path: str) -> list[tuple[int, int, int]]:
    """All completion records of ``path`` as ``(monotonic_ns, pid, arg)``, in file order."""
    with open(path, "rb") as fh:
        data = fh.read()
    usable = len(data) - len(data) % RECORD.size
    return list(RECORD.iter_unpack(data[:usable]))


def checked_in(gate: str) -> set[int]:
    """The process groups (one per worker) that have checked in at ``gate`` so far."""
    try:
        with open(gate + ".ready", "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return set()
    usable = len(data) - len(data) % PGID.size
    return {pgid for (pgid,) in PGID.iter_unpack(data[:usable])}
