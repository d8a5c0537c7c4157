"""``python manage.py omniq_worker``: ``omniq worker`` for a Django project.

The worker is configured by ``settings.OMNIQ``, runs the tasks of every installed app's
``tasks`` module, and stops cleanly on SIGINT/SIGTERM like ``omniq worker`` (the same code).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from omniq.cli.source import BackendProblem, Selected, UsageProblem, describe
from omniq.cli.worker import WorkerOptions, check_worker_type, parse_queues, serve
from omniq.integrations.django import SETTING, build_async_app
from omniq.integrations.django.apps import task_modules


class Command(BaseCommand):  # type: ignore[misc]
    help = "Runs an OmniQ worker configured by settings.OMNIQ (stop with Ctrl-C or SIGTERM)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--queues", help="queues to serve, highest priority first: a,b,c")
        parser.add_argument("--concurrency", type=int, help="tasks run at once")
        parser.add_argument("--type", dest="worker_type", help="worker type (async, thread_pool…)")
        parser.add_argument(
            "--shutdown-timeout",
            type=float,
            default=30.0,
            help="seconds running tasks get to finish after a stop signal",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            worker_options = WorkerOptions(
                queues=parse_queues(options["queues"]),
                concurrency=options["concurrency"],
                worker_type=check_worker_type(options["worker_type"])
                if options["worker_type"]
                else None,
                shutdown_timeout=options["shutdown_timeout"],
                include=list(task_modules),
            )
            app = build_async_app()
            selected = Selected(app, f"{describe(app)} (from settings.{SETTING})")
            outcome = asyncio.run(serve(selected, worker_options))
        except (UsageProblem, BackendProblem) as exc:
            raise CommandError(str(exc)) from None
        if outcome.code:
            sys.exit(outcome.code)
