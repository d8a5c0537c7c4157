-- OmniQ SQLite schema, version 1.
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
