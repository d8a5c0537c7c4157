"""Bulk enqueue only, OmniQ against its peers on one broker, side by side (issue 20, item 2).

    scripts/bench-setup pgqueuer                          # once
    PYTHONPATH=. uv run python -m benchmarks.bulk -n 10000 100000 --runs 3

Each run enqueues N tasks in one bulk call through the same drivers as the full comparison
(``benchmarks/peers/*_driver.py``: OmniQ's ``enqueue_many`` of option dicts, pgqueuer's
``Queries.enqueue`` with lists), into a freshly recreated database, with the contenders
interleaved (rotated order each run). Prints the median rate per N and the OmniQ/peer ratio.
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
    Runner,
    Services,
    omniq_contenders,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--broker", default="postgres", choices=("postgres", "redis", "sqlite"))
    parser.add_argument("--pg-dsn", default="postgresql://postgres@127.0.0.1:5432/omniq_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--venvs", type=Path, default=DEFAULT_VENVS)
    parser.add_argument(
        "--omniq-src",
        type=Path,
        action="append",
        default=[],
        help="also run OmniQ from this src directory (an A/B against another checkout, e.g. "
        "one made by `git archive <commit> src | tar -x -C /tmp/before`)",
    )
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.n) or args.runs < 1:
        parser.error(f"-n and --runs must be positive, got {args.n} and {args.runs}")
    services = Services(redis_url=args.redis_url, pg_dsn=args.pg_dsn)
    runner = Runner(services, n=max(args.n), venvs=args.venvs)
    omniq = [c for c in omniq_contenders(("async",)) if c.broker == args.broker]
    srcs: dict[str, Path] = {}  # contender key -> the src directory it runs OmniQ from
    for src in args.omniq_src:
        other = replace(omniq[0], key=f"{omniq[0].key}@{src}")
        srcs[other.key] = src.resolve()
        omniq.append(other)
    peers = [c for c in PEERS if c.broker == args.broker and runner.python(c) is not None]
    contenders = omniq + peers
    print(
        f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        f"contenders {', '.join(c.key for c in contenders)}",
        flush=True,
    )
    rates: dict[tuple[str, int], list[float]] = {}
    try:
        for n in args.n:
            for r in range(args.runs):
                shift = r % len(contenders)
                for c in contenders[shift:] + contenders[:shift]:
                    with services.fresh(c.broker) as scratch:
                        env = runner.env(c, scratch)
                        if c.key in srcs:
                            env["PYTHONPATH"] = os.pathsep.join(
                                [str(srcs[c.key]), env["PYTHONPATH"]]
                            )
                        rate = runner.enqueue(c, "bulk", env, n)
                    if rate is not None:
                        rates.setdefault((c.key, n), []).append(rate)
                    print(f"n={n} run {r + 1} {c.key}: {rate or 0:,.0f}/s", flush=True)
    finally:
        services.cleanup()
    print(f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for n in args.n:
        medians = {c.key: statistics.median(rates.get((c.key, n), [0.0])) for c in contenders}
        best = max((medians[c.key] for c in peers), default=0.0)
        line = ", ".join(f"{key} {rate:,.0f}/s" for key, rate in medians.items())
        ratio = f" (OmniQ/best peer {medians[omniq[0].key] / best:.2f}x)" if best else ""
        print(f"n={n:,}: {line}{ratio}")


if __name__ == "__main__":
    tempfile.tempdir = tempfile.gettempdir()
    sys.exit(main())
