"""Library defaults, as plain module constants without the ``OMNIQ_`` prefix.

They are plain constants (not a class) so that ``from omniq.config.settings import BASE_DIR`` works
as the seeds show, and so an application may change one before OmniQ reads it::

    import omniq.config.settings as s
    s.TASK_QUEUE_TYPE = "redis"        # then omniq.config.reload_settings()

Every constant is overridden by ``OMNIQ_<NAME>`` in the environment; :mod:`omniq.config.env` parses
and validates both the constant and the variable, and its :class:`~omniq.config.env.Settings` has
one field per constant of this module (a test keeps the two in step). Code that needs a value calls
``omniq.config.get_settings().NAME`` rather than importing it from here, so that the environment
is taken into account.
"""

from __future__ import annotations

import os

# --- identity and places -------------------------------------------------------------------------
#: Namespace for queue names, keys, tables and subjects, so several projects can share one server.
PROJECT_NAME: str = "default"
#: Where embedded backends (SQLite, file) keep their data when no URL says otherwise.
BASE_DIR: str = ".omniq"

# --- library logging (separate from task events) -------------------------------------------------
#: DEBUG, INFO, WARNING, ERROR, CRITICAL or DISABLED.
LOG_LEVEL: str = "WARNING"
#: True silences every ``omniq.*`` logger whatever LOG_LEVEL says.
DISABLE_LOGGING: bool = False
#: ``{"worker": "DEBUG", "storage.redis": "INFO"}``: levels of ``omniq.<component>`` loggers.
COMPONENT_LOG_LEVELS: dict[str, str] = {}

# --- backends: a type (a name in omniq.storage.registry) and/or a URL -----------------------------
TASK_QUEUE_TYPE: str = "sqlite"  # the embedded default: ./.omniq/<project>.db
TASK_QUEUE_URL: str | None = None
#: None: results live in the task queue's backend.
RESULT_STORAGE_TYPE: str | None = None
RESULT_STORAGE_URL: str | None = None
#: None: no event storage, hence no event work at all.
EVENT_STORAGE_TYPE: str | None = None
EVENT_STORAGE_URL: str | None = None
#: Root of the file backend (``file:///dir``, ``s3://bucket``, ``memory://``). Seed 003 calls it
#: FSSPEC_URI and seed 004 OBSTORE_URI; both are accepted and one fills the other.
FSSPEC_URI: str | None = None
OBSTORE_URI: str | None = None

# --- workers -------------------------------------------------------------------------------------
#: async, thread, thread_pool, process, process_pool, gevent or gevent_pool.
DEFAULT_WORKER: str = "async"
#: Concurrency of the async worker (and of the thread pool it runs sync functions in, whose threads
#: start on demand). A worker claims up to its free capacity in one round trip, so a small value
#: caps throughput on a network backend: with 10, one claim per 10 tasks at best.
MAX_WORKERS: int = 100
#: Threads of the thread worker (started on demand, so a lightly loaded worker keeps few). 32, the
#: ceiling of the standard library's own default: with 10, a worker draining short tasks claimed
#: a handful per round trip and spent most of its time waiting on them (2.4k/s against 3.0-3.4k/s
#: on Redis, benchmarks.drain --type thread --sync-func, in one run).
THREAD_WORKERS: int = 32
PROCESS_WORKERS: int = os.cpu_count() or 2
GEVENT_WORKERS: int = 100

# --- task defaults (seconds; None means no limit) ------------------------------------------------
TASK_TIMEOUT: float | None = None
TASK_TTL: float | None = None
RETRY_ATTEMPTS: int = 3
RETRY_DELAY: float = 1.0
#: None keeps results until they are deleted.
RESULT_TTL: float | None = 86_400.0

# --- delivery and safety -------------------------------------------------------------------------
#: How long a claimed task stays reserved for its worker before another worker may re-claim it.
LEASE_TIMEOUT: float = 30.0
#: HMAC key signing serialized payloads; without it, dill payloads are refused on network backends.
SECRET_KEY: str | None = None
#: None: dill is allowed on local backends only (or wherever a SECRET_KEY signs payloads).
ALLOW_DILL: bool | None = None
#: Comma-separated modules whose functions workers may run (and import at start), besides
#: ``@task`` functions and the module of ``omniq worker --app``.
TASK_MODULES: str | None = None
#: True lets workers run any importable function named in a task, stdlib included: then anyone
#: who can write to the broker can run code in the workers. Off by default.
ALLOW_ANY_FUNCTION: bool = False

# --- storage outages (omniq.storage._breaker) ---------------------------------------------------
#: Consecutive connection failures of one storage connection that open its circuit breaker
#: (calls then fail fast with CircuitOpen); 0 turns the breaker off.
BREAKER_THRESHOLD: int = 5
#: Seconds an open breaker waits before letting one probe call through.
BREAKER_COOLDOWN: float = 0.5
#: Finished tasks a worker keeps (results and acknowledgements not yet written) while its stores
#: are away; when full it stops claiming until they are written.
RESULT_BUFFER: int = 10_000

# --- dashboard -----------------------------------------------------------------------------------
DASHBOARD_PORT: int = 8765  # `omniq dashboard` and OMNIQ_DASHBOARD_ENABLED=1 on a worker
DASHBOARD_ENABLED: bool = False
