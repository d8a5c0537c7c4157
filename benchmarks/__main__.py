"""OmniQ against its peers, side by side: one run, same machine, same servers, same workload.

    scripts/bench-setup                                   # once: a virtualenv per peer
    uv run python -m benchmarks -n 2000 --runs 3 --json bench.json
    uv run python -m benchmarks --only omniq-redis-async,taskiq,dramatiq -n 5000
    uv run python -m benchmarks --list

For each contender (OmniQ on SQLite, PostgreSQL and Redis per worker type, and every peer whose
virtualenv exists): enqueue N no-op tasks one by one and drain them with 1 worker process, then
enqueue N in bulk and drain them with 2, then measure enqueue->start latency with one task every
5 ms (``benchmarks/peers/harness.py``). Runs are interleaved
(run 1 of everyone, then run 2, each run in a rotated order) and the table shows medians, with
OmniQ/peer ratios (``benchmarks/report.py``). Redis DB 15 and the PostgreSQL database
``omniq_bench`` are wiped before each phase and left empty at the end; SQLite files live in a
temporary directory.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.peers.harness import (
    DEFAULT_OMNIQ_TYPES,
    DEFAULT_VENVS,
    PEERS,
    BenchError,
    Contender,
    Runner,
    Services,
    omniq_contenders,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-n", type=int, default=2_000, help="tasks per phase (default 2000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per contender (default 3)")
    parser.add_argument(
        "--procs",
        type=int,
        nargs="+",
        default=[1, 2],
        help="worker process counts to drain with, one phase each (default: 1 2)",
    )
    parser.add_argument(
        "--omniq-types",
        default=",".join(DEFAULT_OMNIQ_TYPES),
        help="OmniQ worker types, comma-separated (default: async; e.g. async,thread,process)",
    )
    parser.add_argument(
        "--omniq-concurrency",
        type=int,
        help="also run OmniQ's async worker type with this --concurrency (its default is 10), "
        "beside the default-configured contenders",
    )
    parser.add_argument(
        "--latency-n",
        type=int,
        default=500,
        help="tasks in the enqueue->start latency phase, one every --interval ms (0: skip it)",
    )
    parser.add_argument(
        "--interval", type=float, default=5.0, help="ms between two latency tasks (default 5)"
    )
    parser.add_argument("--only", help="contender keys to run, comma-separated (see --list)")
    parser.add_argument("--skip", help="contender keys to leave out, comma-separated")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    parser.add_argument("--pg-dsn", default="postgresql://postgres@127.0.0.1:5432/omniq_bench")
    parser.add_argument("--venvs", type=Path, default=DEFAULT_VENVS)
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--list", action="store_true", help="list contenders and exit")
    args = parser.parse_args(argv)
    if args.n < 2:
        parser.error(f"-n must be at least 2 (a drain rate needs two completions), got {args.n}")
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs}")
    if args.omniq_concurrency is not None and args.omniq_concurrency < 1:
        parser.error(f"--omniq-concurrency must be at least 1, got {args.omniq_concurrency}")
    if args.latency_n < 0 or 0 < args.latency_n <= 10:
        parser.error(
            f"--latency-n must be 0 (skip) or more than 10 (warm-up), got {args.latency_n}"
        )
    if args.interval <= 0:
        parser.error(f"--interval must be positive, got {args.interval}")
    if any(p < 1 for p in args.procs):
        parser.error(f"--procs must be positive, got {args.procs}")
    return args


def select(args: argparse.Namespace) -> list[Contender]:
    """The contenders named by ``--only``/``--skip`` (unknown keys are an error naming them)."""
    types = tuple(t.strip() for t in args.omniq_types.split(",") if t.strip())
    tuned = (
        omniq_contenders(("async",), args.omniq_concurrency)
        if args.omniq_concurrency is not None
        else ()
    )
    everyone = [*omniq_contenders(types), *tuned, *PEERS]
    keys = {c.key for c in everyone}
    only = _keys(args.only)
    skip = _keys(args.skip)
    unknown = (only | skip) - keys
    if unknown:
        raise SystemExit(
            f"unknown contender(s) {', '.join(sorted(unknown))}: choose from {', '.join(sorted(keys))}"
        )
    return [c for c in everyone if (not only or c.key in only) and c.key not in skip]


def _keys(text: str | None) -> set[str]:
    return {k.strip() for k in (text or "").split(",") if k.strip()}


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    services = Services(redis_url=args.redis_url, pg_dsn=args.pg_dsn, nats_url=args.nats_url)
    runner = Runner(
        services,
        n=args.n,
        procs=tuple(args.procs),
        venvs=args.venvs,
        latency_n=args.latency_n,
        interval_ms=args.interval,
    )
    contenders = select(args)
    entries: dict[str, dict[str, Any]] = {}
    for c in contenders:
        installed = runner.python(c) is not None
        entries[c.key] = {
            "key": c.key,
            "label": c.label,
            "broker": c.broker,
            "omniq": c.omniq,
            "variant": c.variant,
            "version": runner.version(c) if installed else "not installed",
            "runs": [],
            "errors": [] if installed else [f"no virtualenv: run scripts/bench-setup {c.venv}"],
        }
    active = [c for c in contenders if runner.python(c) is not None]
    result: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "command": "uv run python -m benchmarks " + shlex.join(sys.argv[1:]),
        "n": args.n,
        "runs": args.runs,
        "procs": list(args.procs),
        "latency_n": args.latency_n,
        "interval_ms": args.interval,
        "host": {
            "cpus": os.cpu_count(),
            "load_start": " ".join(f"{x:.1f}" for x in os.getloadavg()),
            "python": sys.version.split()[0],
        },
        "contenders": list(entries.values()),
    }
    try:
        for r in range(args.runs):
            # rotate the order each run so that no contender always goes first (or after the
            # same neighbour, whose leftovers in the page cache or the servers could help it)
            shift = r % len(active) if active else 0
            for c in active[shift:] + active[:shift]:
                started = time.monotonic()
                print(f"run {r + 1}/{args.runs} {c.key} ...", end=" ", file=sys.stderr, flush=True)
                try:
                    measured = runner.measure(c)
                except Exception as exc:  # one contender failing must not cost the others' runs
                    entries[c.key]["errors"].append(f"run {r + 1}: {exc}")
                    print(f"failed: {exc}", file=sys.stderr, flush=True)
                    continue
                entries[c.key]["runs"].append(measured)
                brief = ", ".join(
                    f"{k} {v:,.2f}" if k.endswith(("_ms", "_mb")) else f"{k} {v:,.0f}"
                    for k, v in measured.items()
                    if k != "details" and isinstance(v, float)
                )
                print(f"{brief} ({time.monotonic() - started:.0f}s)", file=sys.stderr, flush=True)
    finally:
        services.cleanup()
    result["host"]["load_end"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    for entry in entries.values():
        metrics = {k for m in entry["runs"] for k in m if k != "details"}
        entry["median"] = {k: median([m.get(k) for m in entry["runs"]]) for k in sorted(metrics)}
    return result


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.list:
        runner = Runner(
            Services(args.redis_url, args.pg_dsn, args.nats_url), n=args.n, venvs=args.venvs
        )
        for c in select(args):
            where = runner.python(c)
            state = "ready" if where else f"missing: scripts/bench-setup {c.venv}"
            print(f"{c.key:<26} {c.broker:<9} {c.label:<32} {state}")
        return
    try:
        result = run(args)
    except BenchError as exc:
        raise SystemExit(f"benchmark failed: {exc}") from None
    if args.json:
        report.write_json(result, args.json)
    print(report.markdown(result))


if __name__ == "__main__":
    main()
