"""Worker start to first task (issue 20, items 4 and 7): how long ``omniq worker`` takes from
its process being started to running a task that was waiting for it.

    PYTHONPATH=. uv run python -m benchmarks.startup -n 7
    PYTHONPATH=. uv run python -m benchmarks.startup --url redis://127.0.0.1:6379/15 -n 7

Each run stores one task in a fresh store (a new SQLite file, a flushed Redis DB, a new
PostgreSQL schema), starts ``omniq worker`` as a subprocess, and takes the time from just
before the process is started to the moment the task writes its start time to a file; then
stops the worker. Prints the median and the spread over the runs, per backend. Interpreter
start-up is included, as a supervisor sees it (``python -c pass`` is printed beside it).

The task is :func:`mark` in this module, which the worker imports by reference: so this module
imports nothing at its top but the standard library's ``time`` (its cost counts in the figure).
"""

from __future__ import annotations

import time


def mark(path: str) -> None:
    """The task: writes the wall-clock time it started at."""
    now = time.time()
    with open(path, "w") as f:
        f.write(repr(now))


DEFAULT_URLS = (
    "sqlite",
    "redis://127.0.0.1:6379/15",
    "postgresql://postgres@127.0.0.1:5432/test",
)


def main(argv: list[str] | None = None) -> None:
    import argparse
    import asyncio
    import os
    import statistics
    import subprocess
    import sys
    import tempfile
    import uuid
    from pathlib import Path

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", action="append", help="backend URLs (default: all three)")
    parser.add_argument("-n", type=int, default=7, help="runs per backend (default 7)")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"-n must be at least 1, got {args.n}")
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }

    async def store_one(url: str, project: str, path: str) -> None:
        from omniq import AsyncOmniQ
        from omniq.backend import create_backend

        async with AsyncOmniQ.from_backend(create_backend(url=url, project_name=project)) as oq:
            await oq.enqueue("benchmarks.startup:mark", args=(path,))

    def one(given: str, scratch: Path) -> float:
        url = given
        if url == "sqlite":
            url = f"sqlite:///{scratch / 'startup.db'}"
        elif url.startswith("postgres"):
            url += ("&" if "?" in url else "?") + f"schema=startup_{uuid.uuid4().hex[:8]}"
        project = f"startup-{uuid.uuid4().hex[:8]}"
        done = scratch / f"{project}.time"
        asyncio.run(store_one(url, project, str(done)))
        command = [sys.executable, "-m", "omniq", "worker", "--url", url, "--project", project]
        command += ["--include", "benchmarks.startup"]  # the worker runs listed functions only
        started = time.time()
        worker = subprocess.Popen(
            [*command, "--log-level", "WARNING"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = started + 60
            while not done.exists() or not done.read_text():
                if worker.poll() is not None:
                    raise SystemExit(f"the worker exited: {worker.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
                if time.time() > deadline:
                    raise SystemExit(f"{url}: no task start within 60 s")
                time.sleep(0.002)
            return float(done.read_text()) - started
        finally:
            worker.terminate()
            worker.wait(30)
            if url.startswith("postgres"):
                asyncio.run(_drop_schema(url))

    bare = []
    for _ in range(args.n):
        started = time.time()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append(time.time() - started)
    print(
        f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        f"python -c pass: median {statistics.median(bare):.3f} s",
        flush=True,
    )
    for url in args.url or DEFAULT_URLS:
        times = []
        for _ in range(args.n):
            with tempfile.TemporaryDirectory(prefix="omniq-startup-") as scratch:
                times.append(one(url, Path(scratch)))
        print(
            f"{url}: start to first task median {statistics.median(times):.3f} s "
            f"(min {min(times):.3f}, max {max(times):.3f}, n={len(times)})",
            flush=True,
        )
    print(f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


async def _drop_schema(url: str) -> None:
    """The run's own PostgreSQL schema, dropped after it."""
    from urllib.parse import parse_qs, urlsplit

    import asyncpg  # type: ignore[import-untyped]

    parts = urlsplit(url)
    schema = parse_qs(parts.query)["schema"][0]
    conn = await asyncpg.connect(parts._replace(query="").geturl())
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
