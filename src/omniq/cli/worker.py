"""``omniq worker``: one worker in the foreground, stopped cleanly by SIGINT or SIGTERM.

The first signal stops claiming and gives running tasks ``shutdown_timeout`` seconds to finish;
whatever is still running then is handed back to its queue (``AsyncWorker.stop``), so another
worker takes it at once and nothing is lost. A second signal stops at once: running tasks are
handed back immediately. Supervisors (systemd, Kubernetes, docker stop) send SIGTERM and wait, so
the graceful path is the normal one and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from omniq._redact import redact_text
from omniq.cli.say import Line, Printer, console_for
from omniq.cli.source import BackendProblem, Selected, UsageProblem
from omniq.core import AsyncOmniQ
from omniq.dashboard.beside import Stop
from omniq.dashboard.beside import start_if_enabled as start_dashboard_if_enabled
from omniq.exceptions import ConfigError, OmniQError, QueueNameError
from omniq.models.limits import parse_rate_limit
from omniq.registry import registry
from omniq.workers import WORKER_TYPES, AsyncWorker

#: What supervisors (SIGTERM) and a terminal (Ctrl-C, SIGINT) send to stop a process.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class WorkerOptions:
    queues: list[str] | None = None
    concurrency: int | None = None
    worker_type: str | None = None
    shutdown_timeout: float = 30.0
    #: ``--include``: modules whose functions the worker may run (the --app module is added)
    include: list[str] = field(default_factory=list)
    #: ``--metrics-port`` and its companions: Prometheus metrics served beside the worker
    metrics: MetricsOptions | None = None
    #: ``--rate-limit QUEUE=RATE``: rate limits of whole queues
    rate_limits: dict[str, str] = field(default_factory=dict)
    #: ``--result-buffer``: finished tasks kept while the result store is away (None: settings)
    result_buffer: int | None = None


@dataclass(frozen=True)
class MetricsOptions:
    port: int
    host: str = "127.0.0.1"
    interval: float = 15.0


def metrics_options(port: int | None, host: str, interval: float) -> MetricsOptions | None:
    """``--metrics-port/--metrics-host/--metrics-interval``, checked; None without a port."""
    if port is None:
        return None
    if not 0 < port <= 65535:
        raise UsageProblem(f"--metrics-port must be 1-65535, got {port}")
    if interval <= 0:
        raise UsageProblem(f"--metrics-interval must be > 0 seconds, got {interval:g}")
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise UsageProblem(
            "--metrics-port needs prometheus-client: pip install 'omniq-tasks[metrics]'"
        ) from None
    return MetricsOptions(port, host, interval)


@dataclass
class WorkerOutcome:
    """How ``serve`` ended. ``forced``: a second signal cut the grace period short."""

    code: int
    forced: bool = False
    stats: dict[str, Any] = field(default_factory=dict)


def parse_queues(text: str | None) -> list[str] | None:
    """``"high, medium,low"`` -> ``["high", "medium", "low"]``; the names are checked by the
    task queue when the worker is built."""
    if text is None:
        return None
    names = [q.strip() for q in text.split(",") if q.strip()]
    if not names:
        raise UsageProblem(f"--queues {text!r} names no queue (e.g. --queues high,medium,low)")
    return names


def parse_rate_limits(values: list[str] | None) -> dict[str, str]:
    """``["emails=100/m"]`` -> ``{"emails": "100/m"}``, each rate checked now."""
    limits: dict[str, str] = {}
    for value in values or ():
        queue, sep, rate = value.partition("=")
        if not sep or not queue.strip():
            raise UsageProblem(f"--rate-limit {value!r} is not QUEUE=RATE (e.g. emails=100/m)")
        try:
            limits[queue.strip()] = str(parse_rate_limit(rate, f"--rate-limit of {queue!r}"))
        except ConfigError as exc:
            raise UsageProblem(str(exc)) from None
    return limits


def check_worker_type(name: str) -> str:
    """A worker type this installation provides (``omniq.workers.WORKER_TYPES``)."""
    key = name.strip().lower()
    if key not in WORKER_TYPES:
        raise UsageProblem(
            f"--type {name!r} is not an available worker type: choose one of "
            f"{', '.join(sorted(WORKER_TYPES))}"
        )
    return key


def build_worker(app: AsyncOmniQ, options: WorkerOptions) -> AsyncWorker:
    """The worker the command runs, built by the application so that it shares its stores,
    event logger and worker settings (``worker:`` of a config file)."""
    worker_type = check_worker_type(options.worker_type or app.worker_type)
    config: dict[str, Any] = {"shutdown_timeout": options.shutdown_timeout}
    if options.include:
        config["task_modules"] = options.include
    if options.queues is not None:
        config["queues"] = options.queues
    if options.rate_limits:
        config["rate_limits"] = options.rate_limits
    if options.concurrency is not None:
        if options.concurrency < 1:
            raise UsageProblem(f"--concurrency must be at least 1, got {options.concurrency}")
        config["concurrency"] = options.concurrency
    if options.result_buffer is not None:
        if options.result_buffer < 1:
            raise UsageProblem(f"--result-buffer must be at least 1, got {options.result_buffer}")
        config["result_buffer"] = options.result_buffer
    try:
        return app.create_worker(worker_type, **config)
    except QueueNameError as exc:
        raise UsageProblem(f"--queues {','.join(options.queues or [])!r}: {exc}") from None
    except (OmniQError, ValueError, TypeError) as exc:
        # a queue name the task queue refuses, or an option the worker type does not take
        raise UsageProblem(str(exc)) from None


@contextlib.contextmanager
def stop_signals(callback: Callable[[int], None]) -> Iterator[None]:
    """Routes SIGINT and SIGTERM to ``callback(signum)`` on the running loop, and restores the
    previous handlers afterwards. Where the loop cannot install handlers (Windows), the plain
    ``signal`` module is used and the callback is scheduled onto the loop thread-safely."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    previous: dict[signal.Signals, Any] = {}
    try:
        for sig in STOP_SIGNALS:
            try:
                loop.add_signal_handler(sig, callback, int(sig))
                installed.append(sig)
            except (NotImplementedError, RuntimeError):
                if threading.current_thread() is not threading.main_thread():
                    raise
                previous[sig] = signal.signal(
                    sig, lambda signum, _frame: loop.call_soon_threadsafe(callback, signum)
                )
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def serve(
    selected: Selected, options: WorkerOptions, console: Printer | None = None
) -> WorkerOutcome:
    """Runs a worker on ``selected.app`` until a stop signal, then shuts it down (see module
    docstring). Returns the exit status; the application is closed on return."""
    out = console or console_for()
    app = selected.app
    if selected.module is not None:
        # the --app module is the application: its functions are the worker's to run
        options = replace(options, include=[*options.include, selected.module.__name__])
    worker = build_worker(app, options)
    stop_requested = asyncio.Event()
    force_requested = asyncio.Event()
    received: list[int] = []
    startup: asyncio.Task[None] | None = None
    dashboard: Stop | None = None
    metrics: contextlib.AsyncExitStack | None = None

    def on_signal(signum: int) -> None:
        received.append(signum)
        if len(received) == 1:
            stop_requested.set()
            if startup is not None and not startup.done():
                startup.cancel()  # still connecting: nothing was claimed, just leave
        else:
            force_requested.set()

    # ``__main__:...`` tasks (functions of the script that enqueued them) resolve against the
    # module --app named: this process's own __main__ is the omniq command, never the script
    with stop_signals(on_signal), registry.main_module(selected.module):
        try:
            startup = asyncio.create_task(_start(app, worker, selected.where))
            try:
                await startup
            except asyncio.CancelledError:
                if not received:
                    raise
                out.print(Line(f"{_name(received[0])} while starting: not started"), soft_wrap=True)
                return WorkerOutcome(0)
            out.print(banner(selected, worker), soft_wrap=True)
            if app.task_queue.backend_name == "memory":
                out.print(
                    Line("memory backend: only tasks enqueued in this process are seen", "yellow")
                )
            dashboard = await start_dashboard_if_enabled(app, out)  # OMNIQ_DASHBOARD_ENABLED
            if options.metrics is not None:
                metrics = await _serve_metrics(app, options.metrics, out)
            await stop_requested.wait()
            running = worker.get_stats()["running"]
            out.print(
                Line(
                    f"{_name(received[0])}: stopped claiming; waiting up to "
                    f"{options.shutdown_timeout:g}s for {running} running task(s), then handing "
                    "back the rest (signal again to stop at once)"
                ),
                soft_wrap=True,
            )
            forced = await _stop(worker, options.shutdown_timeout, force_requested)
        finally:
            # on any way out (an error included) running tasks go back to their queue
            if dashboard is not None:
                await dashboard()
            if metrics is not None:
                await metrics.aclose()
            await worker.stop(graceful=False)
            await app.close()
    stats = worker.get_stats()
    out.print(
        Line(
            f"worker {worker.worker_id} stopped{' at once' if forced else ''}: processed "
            f"{stats['processed']} (succeeded {stats['succeeded']}, failed {stats['failed']}, "
            f"retried {stats['retried']}, dead {stats['dead']})"
        ),
        soft_wrap=True,
    )
    code = 128 + received[-1] if forced else 0
    return WorkerOutcome(code, forced=forced, stats=stats)


async def _serve_metrics(
    app: AsyncOmniQ, options: MetricsOptions, out: Printer
) -> contextlib.AsyncExitStack:
    """Prometheus metrics of this worker, served until the returned stack is closed."""
    from omniq.observability.prometheus import serving

    stack = contextlib.AsyncExitStack()
    try:
        metrics = await stack.enter_async_context(
            serving(app, options.port, options.host, options.interval)
        )
    except OSError as exc:
        await stack.aclose()
        raise BackendProblem(
            f"cannot serve metrics on {options.host}:{options.port}: {exc.strerror or exc}"
        ) from exc
    out.print(Line(f"metrics on http://{options.host}:{metrics.port}/metrics"), soft_wrap=True)
    return stack


async def _start(app: AsyncOmniQ, worker: AsyncWorker, where: str) -> None:
    try:
        await app.connect()
        await worker.start()
    except (OmniQError, OSError) as exc:
        raise BackendProblem(
            f"cannot open the backend {where}: {type(exc).__name__}: {redact_text(str(exc))}"
        ) from exc


async def _stop(worker: AsyncWorker, grace: float, force: asyncio.Event) -> bool:
    """The graceful stop, cut short by ``force``; True when it was cut short."""
    graceful = asyncio.create_task(worker.stop(timeout=grace))
    forcing = asyncio.create_task(force.wait())
    await asyncio.wait((graceful, forcing), return_when=asyncio.FIRST_COMPLETED)
    if graceful.done():
        forcing.cancel()
        graceful.result()  # an error while stopping is reported, not swallowed
        return False
    # Cancelling the graceful stop leaves the worker started; stop(graceful=False) then cancels
    # the running tasks, which hand themselves back, and flushes what finished.
    graceful.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await graceful
    await worker.stop(graceful=False)
    return True


def banner(selected: Selected, worker: AsyncWorker) -> Line:
    """One line: who serves what, where (the backend with passwords masked)."""
    app = selected.app
    line = Line("omniq worker ", style="bold")
    line.append(worker.worker_id, style="cyan")
    line.append(f" · {selected.where} · project {app.project_name} · queues ")
    line.append(", ".join(worker.queues), style="green")
    line.append(f" · {worker.worker_type}, concurrency {worker.concurrency} · Ctrl-C to stop")
    return line


def task_threads_alive() -> bool:
    """Whether a task's thread is still running after a forced stop (a thread cannot be killed,
    and the interpreter would wait for it at exit)."""
    main = threading.main_thread()
    return any(t is not main and t.is_alive() and not t.daemon for t in threading.enumerate())


def _name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


__all__ = [
    "STOP_SIGNALS",
    "MetricsOptions",
    "WorkerOptions",
    "WorkerOutcome",
    "build_worker",
    "check_worker_type",
    "metrics_options",
    "parse_queues",
    "serve",
    "stop_signals",
    "task_threads_alive",
]
