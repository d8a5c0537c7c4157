-- The current OmniQ schema, applied as a whole to a fresh schema. Every change here is also a new
-- file in migrations/ (tests/backends/test_postgres.py checks that both give the same tables,
-- columns and indexes). Objects are unqualified: the caller sets search_path to the target schema.

CREATE TABLE tasks (
    project          text        NOT NULL,
    id               text        NOT NULL,
    seq              bigint      GENERATED ALWAYS AS IDENTITY,
    queue            text        NOT NULL,
    func             text        NOT NULL,
    priority         integer     NOT NULL DEFAULT 0,
    status           text        NOT NULL,
    created_at       timestamptz NOT NULL,
    eta              timestamptz,
    -- claim order: the eta of a delayed or retried task, else its creation
    ready_at         timestamptz GENERATED ALWAYS AS (coalesce(eta, created_at)) STORED,
    expires_at       timestamptz,
    result_ttl       double precision,
    max_attempts     integer     NOT NULL,
    attempts         integer     NOT NULL DEFAULT 0,
    schedule_id      text,
    started_at       timestamptz,
    finished_at      timestamptz,
    worker_id        text,
    claim            text,
    lease_expires_at timestamptz,
    cancel_requested boolean     NOT NULL DEFAULT false,
    error_type       text,
    error_message    text,
    error_traceback  text,
    payload          bytea       NOT NULL,
    -- the ids a WAITING task depends on (also in its payload; this copy is for the index)
    depends_on       text[],
    -- some enqueued task depends on this one: its completion then looks for dependents
    waited_on        boolean     NOT NULL DEFAULT false,
    -- the last progress a running task reported (an envelope; NULL: never reported)
    progress         bytea,
    PRIMARY KEY (project, id),
    CONSTRAINT tasks_status_check CHECK (status IN (
        'pending', 'waiting', 'running', 'success', 'failed', 'dead', 'cancelled', 'expired'))
);

-- the claim: one queue at a time, priority desc, ready time, enqueue order (pending rows only)
CREATE INDEX tasks_claim_idx ON tasks (project, queue, priority DESC, ready_at, seq)
    WHERE status = 'pending';
-- when the next delayed task comes due (bounds an idle claimer's wait)
CREATE INDEX tasks_delayed_idx ON tasks (project, queue, eta)
    WHERE status = 'pending' AND eta IS NOT NULL;
-- expired leases
CREATE INDEX tasks_lease_idx ON tasks (project, lease_expires_at)
    WHERE status = 'running';
-- the TTL sweep
CREATE INDEX tasks_expiry_idx ON tasks (project, expires_at)
    WHERE status IN ('pending', 'waiting') AND expires_at IS NOT NULL;
-- listing by queue and status (dead-letter views, stats), in enqueue order
CREATE INDEX tasks_list_idx ON tasks (project, status, queue, seq);
-- listing by function (0005): per (function, status, queue) in enqueue order; also finds the
-- functions' names, one seek each
CREATE INDEX tasks_func_idx ON tasks (project, func, status, queue, seq);
-- the waiting tasks that name a dependency (after every acknowledgement batch); waiting rows only,
-- so it is empty when nothing waits and a task leaves it by its status change alone
CREATE INDEX tasks_waiting_deps_idx ON tasks USING gin (depends_on)
    WITH (fastupdate = off) WHERE status = 'waiting';

CREATE TABLE results (
    project     text        NOT NULL,
    task_id     text        NOT NULL,
    status      text        NOT NULL,
    schedule_id text,
    finished_at timestamptz NOT NULL,
    expires_at  timestamptz,
    payload     bytea       NOT NULL,
    PRIMARY KEY (project, task_id)
);

CREATE INDEX results_schedule_idx ON results (project, schedule_id, finished_at DESC)
    WHERE schedule_id IS NOT NULL;
CREATE INDEX results_expiry_idx ON results (project, expires_at)
    WHERE expires_at IS NOT NULL;

CREATE TABLE events (
    project     text        NOT NULL,
    id          text        NOT NULL,
    task_id     text        NOT NULL,
    event_type  text        NOT NULL,
    ts          timestamptz NOT NULL,
    queue       text,
    worker_id   text,
    schedule_id text,
    func        text,
    attempt     integer,
    details     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (project, id)
);

-- one index per get_events filter, each ending in the (ts, id) order of the result
CREATE INDEX events_ts_idx ON events (project, ts, id);
CREATE INDEX events_task_idx ON events (project, task_id, ts, id);
CREATE INDEX events_type_idx ON events (project, event_type, ts, id);
CREATE INDEX events_queue_idx ON events (project, queue, ts, id);
-- both filters of the dashboard's events page at once (0005)
CREATE INDEX events_queue_type_idx ON events (project, queue, event_type, ts, id);
CREATE INDEX events_schedule_idx ON events (project, schedule_id, ts, id)
    WHERE schedule_id IS NOT NULL;

CREATE TABLE schedules (
    project     text        NOT NULL,
    id          text        NOT NULL,
    queue       text        NOT NULL,
    state       text        NOT NULL,
    next_run_at timestamptz,
    created_at  timestamptz NOT NULL,
    payload     bytea       NOT NULL,
    PRIMARY KEY (project, id)
);

CREATE INDEX schedules_due_idx ON schedules (project, next_run_at)
    WHERE state = 'active';

-- what each live worker publishes about itself (opaque JSON), until it stops renewing it
CREATE TABLE workers (
    project    text        NOT NULL,
    id         text        NOT NULL,
    expires_at timestamptz NOT NULL,
    payload    bytea       NOT NULL,
    PRIMARY KEY (project, id)
);

-- task counts by queue and status, kept in the transaction of every change: by the statements that
-- insert tasks, and by statement-level triggers for updates and deletes (migration 0004 explains
-- the shards: one row set per connection, no hot row; 0008 why inserts count themselves)
CREATE TABLE task_counts (
    project text    NOT NULL,
    queue   text    NOT NULL,
    status  text    NOT NULL,
    shard   integer NOT NULL,
    n       bigint  NOT NULL,
    PRIMARY KEY (project, queue, status, shard)
);

-- SET search_path: the tables of this schema, whatever the connection that changes the tasks.
-- UPDATE and DELETE only: the statements that insert tasks count them themselves (0008).
CREATE FUNCTION task_counts_add() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    -- sorted, so that two connections sharing a shard (pid reuse) lock rows in one order
    IF TG_OP = 'DELETE' THEN
        INSERT INTO task_counts AS c (project, queue, status, shard, n)
        SELECT project, queue, status, pg_backend_pid(), -count(*) FROM old_rows
        GROUP BY project, queue, status ORDER BY project, queue, status
        ON CONFLICT (project, queue, status, shard) DO UPDATE SET n = c.n + excluded.n;
    ELSE
        INSERT INTO task_counts AS c (project, queue, status, shard, n)
        SELECT project, queue, status, pg_backend_pid(), sum(d) FROM (
            SELECT project, queue, status, 1 AS d FROM new_rows
            UNION ALL
            SELECT project, queue, status, -1 FROM old_rows
        ) changed
        GROUP BY project, queue, status HAVING sum(d) <> 0 ORDER BY project, queue, status
        ON CONFLICT (project, queue, status, shard) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_counts_update AFTER UPDATE ON tasks
    REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION task_counts_add();
CREATE TRIGGER tasks_counts_delete AFTER DELETE ON tasks
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION task_counts_add();

CREATE FUNCTION task_counts_truncate() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    DELETE FROM task_counts;
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_counts_truncate AFTER TRUNCATE ON tasks
    FOR EACH STATEMENT EXECUTE FUNCTION task_counts_truncate();

-- Rate-limit buckets (issue 19): one row per bucket, a token bucket in its GCRA form: ``tat``
-- (the "theoretical arrival time", seconds since the epoch) moves one ``interval`` per token;
-- a token may be taken while tat - (burst - 1) * interval <= now. ``wait`` is what the last
-- take answered (0: taken), set by the same statement (queries.sql take_token).
CREATE TABLE rate_buckets (
    project  text             NOT NULL,
    key      text             NOT NULL,
    tat      double precision NOT NULL,
    interval double precision NOT NULL,
    burst    integer          NOT NULL,
    wait     double precision NOT NULL,
    PRIMARY KEY (project, key)
);

-- Concurrency keys: the limit of each key, whose row acquire_slot locks so that two workers
-- taking the last slot of a key one after the other, never both; and the holders of its slots
-- with the time each lapses (a killed worker's slot comes back when its lease would have).
CREATE TABLE concurrency_keys (
    project text    NOT NULL,
    key     text    NOT NULL,
    lim     integer NOT NULL,
    PRIMARY KEY (project, key)
);

CREATE TABLE concurrency_slots (
    project    text             NOT NULL,
    key        text             NOT NULL,
    holder     text             NOT NULL,
    expires_at double precision NOT NULL,
    PRIMARY KEY (project, key, holder)
);

-- A slot under key k for holder h if fewer than lim live holders have one (h already in: its
-- expiry is renewed). Times are seconds since the epoch.
CREATE FUNCTION acquire_slot(
    p text, k text, h text, lim integer, expires double precision, now_s double precision
) RETURNS boolean LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO concurrency_keys AS c (project, key, lim) VALUES (p, k, lim)
    ON CONFLICT (project, key) DO UPDATE SET lim = excluded.lim;
    DELETE FROM concurrency_slots s
    WHERE s.project = p AND s.key = k AND s.expires_at <= now_s;
    IF EXISTS (
        SELECT 1 FROM concurrency_slots s WHERE s.project = p AND s.key = k AND s.holder = h
    ) OR (SELECT count(*) FROM concurrency_slots s WHERE s.project = p AND s.key = k) < lim THEN
        INSERT INTO concurrency_slots AS s (project, key, holder, expires_at)
        VALUES (p, k, h, expires)
        ON CONFLICT (project, key, holder) DO UPDATE SET expires_at = excluded.expires_at;
        RETURN true;
    END IF;
    RETURN false;
END
$$;
