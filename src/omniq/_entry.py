"""The ``omniq`` console script. It stays import-light so that ``--type gevent`` can monkey-patch
the process before anything else (asyncio, threading, sockets, drivers) is imported, and so that
a plain ``omniq worker`` command line starts without typer (``omniq.cli.fast``)."""

from __future__ import annotations

import sys


def wants_gevent(argv: list[str]) -> bool:
    for i, arg in enumerate(argv):
        if arg in ("--type", "-t") and i + 1 < len(argv):
            return argv[i + 1].lower() in ("gevent", "gevent_pool")
        if arg.startswith("--type="):
            return arg.partition("=")[2].lower() in ("gevent", "gevent_pool")
    return False


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "worker" and wants_gevent(sys.argv[2:]):
        try:
            from gevent import monkey
        except ImportError:
            print(
                "omniq: error: --type gevent needs gevent: pip install 'omniq-tasks[gevent]'",
                file=sys.stderr,
            )
            raise SystemExit(2) from None
        monkey.patch_all()
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        from omniq.cli.fast import parse_worker_args, run_worker

        args = parse_worker_args(sys.argv[2:])
        if args is not None:
            run_worker(args)
    from omniq.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
