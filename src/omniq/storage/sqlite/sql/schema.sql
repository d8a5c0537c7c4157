-- OmniQ SQLite schema: what the migrations in migrations/ produce, in one place to read. A test
-- applies the migrations to one database and this file to another and compares the two; a new
-- migration updates this file in the same change.
--
-- Times are INTEGER microseconds since the Unix epoch (UTC): exact round trips, cheap comparisons.
-- Every table carries `project`, so several projects may share one database file.
-- A task's payload is its serializer envelope (arguments, options); its state lives in columns,
-- which are the state of record and are laid back over the decoded payload.

CREATE TABLE omniq_tasks (
    seq              INTEGER PRIMARY KEY,       -- enqueue order, the last tie-breaker of a claim
    project          TEXT    NOT NULL,
    id               TEXT    NOT NULL,
    queue            TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 0,
    ready_at         INTEGER NOT NULL,          -- eta, or created_at when there is none
    created_at       INTEGER NOT NULL,
    func             TEXT    NOT NULL,
    schedule_id      TEXT,
    max_retries      INTEGER NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    eta              INTEGER,
    expires_at       INTEGER,
    started_at       INTEGER,
    finished_at      INTEGER,
    worker_id        TEXT,
    claim            TEXT,
    lease_expires_at INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    error_type       TEXT,
    error_message    TEXT,
    error_traceback  TEXT,
    payload          BLOB    NOT NULL,
    progress         BLOB,                      -- the last progress reported (an envelope)
    UNIQUE (project, id)
);

-- The claim: per queue, pending tasks in claim order (priority desc, ready time, enqueue order).
CREATE INDEX omniq_tasks_claim
    ON omniq_tasks (project, queue, priority DESC, ready_at, seq)
    WHERE status = 'pending';

-- When the next delayed task of a queue comes due (an idle claimer sleeps until then).
CREATE INDEX omniq_tasks_due
    ON omniq_tasks (project, queue, ready_at)
    WHERE status = 'pending';

-- Lease recovery.
CREATE INDEX omniq_tasks_lease
    ON omniq_tasks (project, lease_expires_at)
    WHERE status = 'running';

-- TTL sweeps (by the claim and by cleanup).
CREATE INDEX omniq_tasks_expiry
    ON omniq_tasks (project, expires_at)
    WHERE expires_at IS NOT NULL AND status IN ('pending', 'waiting');

-- Listing, sizes and statistics by queue and status.
CREATE INDEX omniq_tasks_queue_status ON omniq_tasks (project, queue, status, seq);
CREATE INDEX omniq_tasks_status ON omniq_tasks (project, status, seq);

-- Listing by function (migration 5): per (function, queue) in enqueue order, without the status,
-- so that claims and acknowledgements never touch it; also finds the functions' names, one seek
-- each.
CREATE INDEX omniq_tasks_func_queue ON omniq_tasks (project, func, queue, seq);

CREATE TABLE omniq_schedules (
    project     TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    queue       TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    next_run_at INTEGER,
    payload     BLOB    NOT NULL,
    PRIMARY KEY (project, id)
);

CREATE INDEX omniq_schedules_due ON omniq_schedules (project, state, next_run_at);

CREATE TABLE omniq_results (
    project     TEXT    NOT NULL,
    task_id     TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    schedule_id TEXT,
    finished_at INTEGER NOT NULL,
    expires_at  INTEGER,
    payload     BLOB    NOT NULL,
    PRIMARY KEY (project, task_id)
);

CREATE INDEX omniq_results_schedule
    ON omniq_results (project, schedule_id, finished_at)
    WHERE schedule_id IS NOT NULL;

CREATE INDEX omniq_results_expiry
    ON omniq_results (project, expires_at)
    WHERE expires_at IS NOT NULL;

-- Events are plain columns plus JSON details (never pickled): any SQLite tool can read them.
CREATE TABLE omniq_events (
    seq         INTEGER PRIMARY KEY,
    project     TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    task_id     TEXT    NOT NULL,
    event_type  TEXT    NOT NULL,
    timestamp   INTEGER NOT NULL,
    queue       TEXT,
    worker_id   TEXT,
    schedule_id TEXT,
    func        TEXT,
    attempt     INTEGER,
    details     TEXT    NOT NULL DEFAULT '{}',
    UNIQUE (project, id)
);

-- One index per get_events filter, each ending in the sort order (timestamp, id).
CREATE INDEX omniq_events_time ON omniq_events (project, timestamp, id);
CREATE INDEX omniq_events_task ON omniq_events (project, task_id, timestamp, id);
CREATE INDEX omniq_events_type ON omniq_events (project, event_type, timestamp, id);
CREATE INDEX omniq_events_queue ON omniq_events (project, queue, timestamp, id);
CREATE INDEX omniq_events_schedule
    ON omniq_events (project, schedule_id, timestamp, id)
    WHERE schedule_id IS NOT NULL;
-- Both filters of the dashboard's events page at once (migration 4).
CREATE INDEX omniq_events_queue_type ON omniq_events (project, queue, event_type, timestamp, id);

-- Task dependencies and the worker registry (migration 2).

-- Which WAITING task waits on which dependency: the index `_dependents` answers from after every
-- acknowledgement batch (a primary-key range per finished id, nothing to scan when nobody waits).
-- Rows are written in the enqueue transaction of the dependent and exist only while it is
-- WAITING: the triggers below drop them the moment it leaves that state or is deleted, whatever
-- statement moved it (promotion, cancellation, TTL expiry, purge).
CREATE TABLE omniq_task_deps (
    project TEXT NOT NULL,
    dep_id  TEXT NOT NULL,
    task_id TEXT NOT NULL,
    PRIMARY KEY (project, dep_id, task_id)
) WITHOUT ROWID;

-- For the triggers: the rows of one dependent.
CREATE INDEX omniq_task_deps_task ON omniq_task_deps (project, task_id);

CREATE TRIGGER omniq_task_deps_left_waiting
    AFTER UPDATE OF status ON omniq_tasks
    WHEN OLD.status = 'waiting' AND NEW.status <> 'waiting'
BEGIN
    DELETE FROM omniq_task_deps WHERE project = OLD.project AND task_id = OLD.id;
END;

CREATE TRIGGER omniq_task_deps_deleted
    AFTER DELETE ON omniq_tasks
    WHEN OLD.status = 'waiting'
BEGIN
    DELETE FROM omniq_task_deps WHERE project = OLD.project AND task_id = OLD.id;
END;

-- The sweep that settles WAITING tasks nobody settled (a process died in between) lists them.
-- omniq_tasks_status (project, status, seq) already serves it.

-- Workers publish a JSON record (never code) and renew it; a record past expires_at is dead.
CREATE TABLE omniq_workers (
    project    TEXT    NOT NULL,
    worker_id  TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    payload    BLOB    NOT NULL,
    PRIMARY KEY (project, worker_id)
) WITHOUT ROWID;

-- Task counts by queue and status (migration 3), kept by triggers in the transaction of every
-- change: stats() and get_queue_size() read these rows instead of counting the tasks.
CREATE TABLE omniq_task_counts (
    project TEXT    NOT NULL,
    queue   TEXT    NOT NULL,
    status  TEXT    NOT NULL,
    n       INTEGER NOT NULL,
    PRIMARY KEY (project, queue, status)
) WITHOUT ROWID;

CREATE TRIGGER omniq_task_counts_insert AFTER INSERT ON omniq_tasks
BEGIN
    INSERT INTO omniq_task_counts (project, queue, status, n)
    VALUES (NEW.project, NEW.queue, NEW.status, 1)
    ON CONFLICT (project, queue, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER omniq_task_counts_update AFTER UPDATE OF status, queue ON omniq_tasks
    WHEN OLD.status <> NEW.status OR OLD.queue <> NEW.queue
BEGIN
    UPDATE omniq_task_counts SET n = n - 1
    WHERE project = OLD.project AND queue = OLD.queue AND status = OLD.status;
    INSERT INTO omniq_task_counts (project, queue, status, n)
    VALUES (NEW.project, NEW.queue, NEW.status, 1)
    ON CONFLICT (project, queue, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER omniq_task_counts_delete AFTER DELETE ON omniq_tasks
BEGIN
    UPDATE omniq_task_counts SET n = n - 1
    WHERE project = OLD.project AND queue = OLD.queue AND status = OLD.status;
END;

-- Rate-limit buckets and concurrency keys (migration 7): one small record per (kind, key),
-- changed in one transaction (see omniq.storage.base.limits.RecordLimits).
CREATE TABLE omniq_limits (
    project TEXT NOT NULL,
    kind    TEXT NOT NULL,
    key     TEXT NOT NULL,
    record  BLOB NOT NULL,
    PRIMARY KEY (project, kind, key)
) WITHOUT ROWID;
