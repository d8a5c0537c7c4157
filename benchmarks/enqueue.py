"""One-by-one enqueue only: OmniQ's APIs, its peers and the raw client, side by side per broker
(issue 20, item 1).

    scripts/bench-setup huey pgqueuer                     # once
    PYTHONPATH=. uv run python -m benchmarks.enqueue -n 5000 --runs 3
    PYTHONPATH=. uv run python -m benchmarks.enqueue --broker redis --api async,sync

Each run enqueues N no-op tasks sequentially, one call per task, through the same drivers as
the full comparison (``benchmarks/peers/*_driver.py``), into fresh storage, with the contenders
interleaved (rotated order each run):

- OmniQ through each API asked for (``--api``): ``async`` (``await oq.enqueue(func, ...)``),
  ``sync`` (the blocking ``OmniQ``), ``task`` and ``task-sync`` (``func.enqueue(...)`` of an
  ``@oq.task``, on an async and a sync app);
- every peer on that broker whose virtualenv exists;
- the raw client (``raw_driver.py``): one write of a task-sized payload per task, with the
  client OmniQ's backend uses, asynchronous and, where OmniQ has one, blocking. The ceiling of
  a one-by-one enqueue on this machine, measured in the same run.

Prints the median rate per contender, then each OmniQ API against the fastest peer and against
the raw client of its kind (async API: the async raw client; sync API: the sync one where there
is one, else the async one).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from benchmarks.peers.harness import (
    DEFAULT_VENVS,
    PEERS,
    Contender,
    Runner,
    Services,
    omniq_contenders,
)

APIS = ("async", "sync", "task", "task-sync")
BROKERS = ("redis", "postgres", "sqlite")
#: the raw clients per broker (PostgreSQL: OmniQ has no blocking client, so only asyncpg)
RAW_VARIANTS = {"redis": ("async", "sync"), "postgres": ("async",), "sqlite": ("async", "sync")}


def raw_contenders(broker: str) -> list[Contender]:
    return [
        Contender(
            f"raw-{broker}-{variant}",
            f"raw client ({variant})",
            broker,
            "raw_driver.py",
            None,
            "omniq-tasks",
            variant,
        )
        for variant in RAW_VARIANTS[broker]
    ]


def omniq_api_contenders(broker: str, apis: list[str]) -> list[Contender]:
    base = next(c for c in omniq_contenders(("async",)) if c.broker == broker)
    return [
        replace(
            base, key=f"omniq-{broker}-{api}", label=f"OmniQ ({api} API)", variant=f"async/{api}"
        )
        for api in apis
    ]


def raw_for(api: str, broker: str) -> str:
    """The raw client an API is held against: the blocking one for a blocking API, where there
    is one."""
    blocking = api in ("sync", "task-sync")
    kind = "sync" if blocking and "sync" in RAW_VARIANTS[broker] else "async"
    return f"raw-{broker}-{kind}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=5_000, help="tasks per run (default 5000)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--broker", action="append", choices=BROKERS, help="brokers (default: all three)"
    )
    parser.add_argument("--api", default=",".join(APIS), help=f"OmniQ APIs, from {APIS}")
    parser.add_argument("--pg-dsn", default="postgresql://postgres@127.0.0.1:5432/omniq_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--venvs", type=Path, default=DEFAULT_VENVS)
    parser.add_argument(
        "--omniq-src",
        type=Path,
        action="append",
        default=[],
        help="run OmniQ's APIs from this src directory instead of the environment's, keyed by "
        "the directory's parent (repeat for an A/B: `git archive <commit> src | tar -x -C "
        "/tmp/before` gives /tmp/before/src, keyed @before)",
    )
    args = parser.parse_args(argv)
    apis = [a.strip() for a in args.api.split(",") if a.strip()]
    unknown = [a for a in apis if a not in APIS]
    if unknown or not apis:
        parser.error(f"--api takes some of {APIS}, got {args.api!r}")
    if args.n < 1 or args.runs < 1:
        parser.error(f"-n and --runs must be positive, got {args.n} and {args.runs}")
    services = Services(redis_url=args.redis_url, pg_dsn=args.pg_dsn)
    runner = Runner(services, n=args.n, venvs=args.venvs)
    print(f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    rates: dict[str, list[float]] = {}
    table: list[tuple[str, list[Contender], list[Contender], list[Contender]]] = []
    srcs: dict[str, Path] = {}  # contender key -> the src directory it runs OmniQ from
    try:
        for broker in args.broker or BROKERS:
            omniq = [] if args.omniq_src else omniq_api_contenders(broker, apis)
            for src in args.omniq_src:
                for c in omniq_api_contenders(broker, apis):
                    other = replace(c, key=f"{c.key}@{src.resolve().parent.name}")
                    srcs[other.key] = src.resolve()
                    omniq.append(other)
            peers = [c for c in PEERS if c.broker == broker and runner.python(c) is not None]
            contenders = omniq + peers + raw_contenders(broker)
            table.append((broker, omniq, peers, contenders))
            for r in range(args.runs):
                shift = r % len(contenders)
                for c in contenders[shift:] + contenders[:shift]:
                    with services.fresh(c.broker) as scratch:
                        env = runner.env(c, scratch)
                        if c.key in srcs:
                            env["PYTHONPATH"] = os.pathsep.join(
                                [str(srcs[c.key]), env["PYTHONPATH"]]
                            )
                        rate = runner.enqueue(c, "single", env)
                    rates.setdefault(c.key, []).append(rate or 0.0)
                    print(f"{broker} run {r + 1} {c.key}: {rate or 0:,.0f}/s", flush=True)
    finally:
        services.cleanup()
    print(f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    median = {key: statistics.median(values) for key, values in rates.items()}
    for broker, omniq, peers, contenders in table:
        print(f"\n{broker}, n={args.n:,}, median of {args.runs}:")
        for c in sorted(contenders, key=lambda c: -median[c.key]):
            print(f"  {c.key:36s} {median[c.key]:9,.0f}/s")
        best = max(peers, key=lambda c: median[c.key], default=None)
        for c in omniq:
            raw = raw_for(c.variant.partition("/")[2], broker)
            parts = [f"{median[c.key] / median[raw]:.2f}x {raw}"]
            if best is not None:
                parts.insert(0, f"{median[c.key] / median[best.key]:.2f}x {best.key}")
            print(f"  {c.key}: " + ", ".join(parts))


if __name__ == "__main__":
    tempfile.tempdir = tempfile.gettempdir()
    sys.exit(main())
