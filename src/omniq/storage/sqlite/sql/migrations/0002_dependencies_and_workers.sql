-- OmniQ SQLite schema, version 2: task dependencies and the worker registry.

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
