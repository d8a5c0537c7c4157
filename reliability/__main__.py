"""``python -m reliability <scenario> [--backend ...] [--short]``: run fault scenarios, print their
figures and a summary table, exit 1 if any pass criterion failed.

Scenarios (see each module's docstring for its pass criteria):

  a, kill         worker processes SIGKILLed every few seconds while they drain a queue
  b, restart      the Redis / PostgreSQL server restarted under running workers (private servers)
  c, timeout      a task hanging past its timeout (async: cancelled; process: child killed)
  d, poison       a task that kills its process with os._exit(1)
  e, bad-input    bad input refused clearly; damaged stored payloads go DEAD; data intact
  f, sqlite-disk  SQLite in a read-only or full directory
  g, redis-ha     Redis Cluster / Sentinel failovers (kill -9, SENTINEL FAILOVER, SIGSTOP)
                  under draining workers, waiting clients and a producer (private servers)
  h, trust        attacker processes writing to the store: forbidden functions, a signed payload
                  copied into another task, crafted pickles in a task and a result
  i, batches      a producer SIGKILLed mid enqueue_many of 50,000 tasks: none or all stored,
                  and the same batch again stores every task exactly once
  j, waiters      300 clients in get_result(timeout=None) while the server restarts (private
                  servers): none raises, each gets its value; with a timeout, BackendUnavailable
  k, outage       the Redis / PostgreSQL server down 10 s under draining workers (private
                  servers): nothing lost or run twice, work resumes within 2 s of its return
  all             every scenario on every backend it applies to, at full size
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict

from reliability import (
    bad_input,
    batches,
    kill,
    outage,
    poison,
    redis_ha,
    restart,
    sqlite_disk,
    timeout,
    trust,
    waiters,
)
from reliability.harness import BACKENDS, Outcome

Runner = Callable[[str, bool], Awaitable[list[Outcome]]]


async def _kill(backend: str, short: bool) -> list[Outcome]:
    options = (
        kill.KillOptions(tasks=1_000, workers=2, kill_every=2.0, work_ms=20, concurrency=5)
        if short
        else kill.KillOptions()
    )
    return [await kill.run(backend, options)]


async def _poison(backend: str, short: bool) -> list[Outcome]:
    retries = 1 if short else 2
    return [
        await poison.run(backend, poison.PoisonOptions(worker_type=kind, max_retries=retries))
        for kind in ("process", "async")
    ]


async def _restart(backend: str, short: bool) -> list[Outcome]:
    options = restart.RestartOptions(tasks=1_000, down=1.0) if short else None
    return [await restart.run(backend, mode, options) for mode in restart.MODES[backend]]


async def _timeout(backend: str, short: bool) -> list[Outcome]:
    return [await timeout.run(backend, kind, func) for kind, func in timeout.CASES]


async def _sqlite_disk(backend: str, short: bool) -> list[Outcome]:
    return [await sqlite_disk.run(backend)]


async def _bad_input(backend: str, short: bool) -> list[Outcome]:
    return [await bad_input.run(backend, big_mb=5 if short else 50)]


async def _redis_ha(backend: str, short: bool) -> list[Outcome]:
    options = redis_ha.HAOptions(tasks=600, waiters=100, deadline=60) if short else None
    return [await redis_ha.run(fault, options) for fault in redis_ha.FAULTS]


async def _trust(backend: str, short: bool) -> list[Outcome]:
    return [await trust.run(backend)]


async def _waiters(backend: str, short: bool) -> list[Outcome]:
    options = waiters.WaitersOptions(waiters=100, down=1.0, timeout_waiters=20) if short else None
    return [await waiters.run(backend, options)]


async def _batches(backend: str, short: bool) -> list[Outcome]:
    return [await batches.run(backend, 10_000 if short else batches.TASKS)]


async def _outage(backend: str, short: bool) -> list[Outcome]:
    options = outage.OutageOptions(tasks=3_000) if short else None
    return [await outage.run(backend, options)]


#: name -> (aliases, runner, backends it applies to)
SCENARIOS: dict[str, tuple[tuple[str, ...], Runner, tuple[str, ...]]] = {
    "kill": (("a",), _kill, BACKENDS),
    "restart": (("b",), _restart, ("postgres", "redis")),
    "timeout": (("c",), _timeout, ("sqlite",)),
    "poison": (("d",), _poison, BACKENDS),
    "bad-input": (("e",), _bad_input, BACKENDS),
    "sqlite-disk": (("f",), _sqlite_disk, ("sqlite",)),
    "redis-ha": (("g",), _redis_ha, ("redis",)),
    "trust": (("h",), _trust, BACKENDS),
    "batches": (("i",), _batches, BACKENDS),
    "waiters": (("j",), _waiters, ("postgres", "redis")),
    "outage": (("k",), _outage, ("postgres", "redis")),
}


def scenario_named(name: str) -> str:
    for key, (aliases, _, _) in SCENARIOS.items():
        if name == key or name in aliases:
            return key
    known = ", ".join(f"{'/'.join((*a, k))}" for k, (a, _, _) in SCENARIOS.items())
    raise SystemExit(f"reliability: unknown scenario {name!r}: choose one of {known}, or all")


def summary(outcomes: list[Outcome]) -> str:
    lines = [
        "| scenario | backend | result | figures | time |",
        "|---|---|---|---|---|",
    ]
    for o in outcomes:
        failed = "; ".join(f"{c.name} ({c.detail})" for c in o.failures())
        result = "PASS" if o.passed else f"FAIL: {failed}"
        lines.append(f"| {o.scenario} | {o.backend} | {result} | {o.headline} | {o.seconds:.0f}s |")
    return "\n".join(lines)


def _write_json(path: str, outcomes: list[Outcome]) -> None:
    with open(path, "w") as out:
        json.dump([asdict(o) for o in outcomes], out, indent=2, default=str)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reliability",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("scenario", help="a..j, a scenario name, or all")
    parser.add_argument(
        "--backend",
        "-b",
        help=f"comma-separated subset of {','.join(BACKENDS)} (default: all that apply)",
    )
    parser.add_argument("--short", action="store_true", help="the small CI sizes")
    parser.add_argument("--json", help="also write every outcome to this JSON file")
    args = parser.parse_args(argv)

    names = list(SCENARIOS) if args.scenario == "all" else [scenario_named(args.scenario)]
    wanted = BACKENDS if not args.backend else tuple(b.strip() for b in args.backend.split(","))
    for backend in wanted:
        if backend not in BACKENDS:
            parser.error(f"--backend {backend!r}: choose among {', '.join(BACKENDS)}")
    outcomes: list[Outcome] = []
    began = time.monotonic()
    for name in names:
        _, runner, applies = SCENARIOS[name]
        for backend in (b for b in wanted if b in applies):
            for outcome in await runner(backend, args.short):
                print(outcome.render(), flush=True)
                outcomes.append(outcome)
    print()
    print(summary(outcomes))
    failed = sum(not o.passed for o in outcomes)
    print(f"\n{len(outcomes) - failed}/{len(outcomes)} passed in {time.monotonic() - began:.0f}s")
    if args.json:
        _write_json(args.json, outcomes)
    return 1 if failed or not outcomes else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
