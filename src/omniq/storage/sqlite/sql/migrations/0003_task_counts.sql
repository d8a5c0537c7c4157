-- OmniQ SQLite schema, version 3: task counts by queue and status, kept by triggers in the
-- transaction of every change, so that stats() and get_queue_size() read a few rows instead of
-- counting the tasks. SQLite has one writer at a time: one row per (queue, status) costs no
-- waiting, and a trigger fires only on a statement that sets the status.
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

-- The tasks already stored, counted once.
INSERT INTO omniq_task_counts (project, queue, status, n)
SELECT project, queue, status, COUNT(*) FROM omniq_tasks GROUP BY project, queue, status;
