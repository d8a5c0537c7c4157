-- Every statement OmniQ sends to PostgreSQL, one per "-- name: <name>" header (read by _sql.py).
-- Tables are unqualified: each connection's search_path is the configured schema. Times are
-- passed in from Python ($now) so every backend judges readiness, leases and TTLs alike.
--
-- Statements that change a batch of tasks named by id check the status as
-- `(t.status = 'running') IS TRUE`: the same test, but one the planner cannot answer from a
-- partial index on the status (tasks_lease_idx, WHERE status = 'running') or from tasks_list_idx.
-- Written plainly, it joined the batch against every running (or waiting) task of the project,
-- read through that index with the dead entries every claim leaves there until VACUUM runs (an
-- acknowledgement then cost in proportion to the project's running tasks, 6.5 -> 77 ms p50 over
-- 300,000 tasks with autovacuum off); so each task is found by its primary key.

-- ============================================================================================
-- tasks
-- ============================================================================================

-- name: enqueue
-- $1 project, $2.. one array per column (one element per task), $14 the queue channel, $15 each
-- task's depends_on as a JSON array (NULL when it has none), $16 every id the batch depends on.
-- One round trip for any number of tasks; an id that exists is left alone (idempotent enqueue).
-- Only PENDING rows wake claimers: a WAITING one is not claimable until promoted. The tasks
-- depended on are flagged waited_on: new ones as they are inserted, the others by `flagged`
-- (a sibling of the INSERT, so it sees only rows that existed before this statement). `counted`
-- adds the new rows to the kept counts (no trigger counts inserts: migration 0008).
WITH flagged AS (
    UPDATE tasks SET waited_on = true
    WHERE project = $1 AND id = ANY($16::text[]) AND NOT waited_on
), rows AS (
    INSERT INTO tasks (project, id, queue, func, priority, status, created_at, eta, expires_at,
                       result_ttl, max_attempts, schedule_id, payload, depends_on, waited_on)
    SELECT $1, r.id, r.queue, r.func, r.priority, r.status, r.created_at, r.eta, r.expires_at,
           r.result_ttl, r.max_attempts, r.schedule_id, r.payload,
           CASE WHEN r.deps IS NOT NULL
                THEN array(SELECT jsonb_array_elements_text(r.deps::jsonb)) END,
           r.id = ANY($16::text[])
    FROM unnest($2::text[], $3::text[], $4::text[], $5::int[], $6::text[], $7::timestamptz[],
                $8::timestamptz[], $9::timestamptz[], $10::float8[], $11::int[], $12::text[],
                $13::bytea[], $15::text[])
         WITH ORDINALITY AS r(id, queue, func, priority, status, created_at, eta, expires_at,
                              result_ttl, max_attempts, schedule_id, payload, deps, ord)
    ORDER BY r.ord
    ON CONFLICT (project, id) DO NOTHING
    RETURNING id, queue, status
), counted AS (
    INSERT INTO task_counts AS c (project, queue, status, shard, n)
    SELECT $1, queue, status, pg_backend_pid(), count(*) FROM rows
    GROUP BY queue, status ORDER BY queue, status
    ON CONFLICT (project, queue, status, shard) DO UPDATE SET n = c.n + excluded.n
)
SELECT array(SELECT id FROM rows) AS created,
       (SELECT count(pg_notify($14, q.queue))
        FROM (SELECT DISTINCT queue FROM rows WHERE status = 'pending') AS q) AS woke;

-- name: enqueue_one
-- $1 project, $2..$13 the columns of one task without dependencies, $14 the queue channel. The
-- sequential enqueue: plain VALUES plan and execute a quarter faster than `enqueue`'s unnest of
-- a dozen arrays (0.47 against 0.60 ms a call, commit included, measured here). `counted` adds
-- the row to the kept counts (migration 0008). Its notification names the task as well as its
-- queue ("queue id"): a claimer woken by it claims the task by primary key (claim_ids).
WITH rows AS (
    INSERT INTO tasks (project, id, queue, func, priority, status, created_at, eta, expires_at,
                       result_ttl, max_attempts, schedule_id, payload)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
    ON CONFLICT (project, id) DO NOTHING
    RETURNING id, queue, status
), counted AS (
    INSERT INTO task_counts AS c (project, queue, status, shard, n)
    SELECT $1, queue, status, pg_backend_pid(), 1 FROM rows
    ON CONFLICT (project, queue, status, shard) DO UPDATE SET n = c.n + excluded.n
)
SELECT array(SELECT id FROM rows) AS created,
       (SELECT count(pg_notify($14, r.queue || ' ' || r.id))
        FROM rows AS r WHERE r.status = 'pending') AS woke;

-- name: create_staging
-- Once per pooled connection of a task queue: where a large enqueue_many is COPYed before it
-- goes into tasks (COPY cannot skip ids that exist; INSERT ... SELECT can). Temporary, so private
-- to the connection, and emptied at the commit of each transaction that used it.
CREATE TEMPORARY TABLE IF NOT EXISTS omniq_enqueue_stage_v1 (
    id           text        NOT NULL,
    queue        text        NOT NULL,
    func         text        NOT NULL,
    priority     integer     NOT NULL,
    status       text        NOT NULL,
    created_at   timestamptz NOT NULL,
    eta          timestamptz,
    expires_at   timestamptz,
    result_ttl   double precision,
    max_attempts integer     NOT NULL,
    schedule_id  text,
    payload      bytea       NOT NULL,
    deps         text
) ON COMMIT DELETE ROWS;

-- name: enqueue_staged
-- $1 project, $2 the queue channel, $3 every id the batch depends on: enqueue (as above) of the
-- rows COPYed into the staging table in this transaction, counted as by `enqueue`. {conflict} is empty on the first try
-- (a plain INSERT: ON CONFLICT's speculative insertion cost a quarter of the statement) and
-- ON CONFLICT (project, id) DO NOTHING when that try met an id that exists (see queue.py).
-- No ORDER BY: the table is this connection's own, emptied at every commit and has no index,
-- so its only plan is a sequential scan, in COPY order -- the batch order, which gives the rows
-- their seq (sorting 10,000 wide rows cost a fifth of the insert).
WITH flagged AS (
    UPDATE tasks SET waited_on = true
    WHERE project = $1 AND id = ANY($3::text[]) AND NOT waited_on
), rows AS (
    INSERT INTO tasks (project, id, queue, func, priority, status, created_at, eta, expires_at,
                       result_ttl, max_attempts, schedule_id, payload, depends_on, waited_on)
    SELECT $1, r.id, r.queue, r.func, r.priority, r.status, r.created_at, r.eta, r.expires_at,
           r.result_ttl, r.max_attempts, r.schedule_id, r.payload,
           CASE WHEN r.deps IS NOT NULL
                THEN array(SELECT jsonb_array_elements_text(r.deps::jsonb)) END,
           r.id = ANY($3::text[])
    FROM omniq_enqueue_stage_v1 AS r
    {conflict}
    RETURNING id, queue, status
), counted AS (
    INSERT INTO task_counts AS c (project, queue, status, shard, n)
    SELECT $1, queue, status, pg_backend_pid(), count(*) FROM rows
    GROUP BY queue, status ORDER BY queue, status
    ON CONFLICT (project, queue, status, shard) DO UPDATE SET n = c.n + excluded.n
)
SELECT array(SELECT id FROM rows) AS created,
       (SELECT count(pg_notify($2, q.queue))
        FROM (SELECT DISTINCT queue FROM rows WHERE status = 'pending') AS q) AS woke;

-- name: claim
-- $1 project, $2 queues in the order to serve them, $3 limit, $4 worker id, $5 now,
-- $6 lease deadline. One statement: per queue, the first $3 ready rows nobody holds (SKIP
-- LOCKED, served by tasks_claim_idx), then the first $3 of those in queue order. Due delayed
-- tasks are ready by their ready_at; tasks past their TTL end EXPIRED here instead of running.
WITH candidates AS (
    SELECT picked.id, q.rank
    FROM unnest($2::text[]) WITH ORDINALITY AS q(name, rank)
    CROSS JOIN LATERAL (
        SELECT t.id, t.priority, t.ready_at, t.seq
        FROM tasks t
        WHERE t.project = $1 AND t.queue = q.name AND t.status = 'pending' AND t.ready_at <= $5::timestamptz
        ORDER BY t.priority DESC, t.ready_at, t.seq
        LIMIT $3
        FOR UPDATE SKIP LOCKED
    ) AS picked
    ORDER BY q.rank, picked.priority DESC, picked.ready_at, picked.seq
    LIMIT $3
)
UPDATE tasks t SET
    status = CASE WHEN t.expires_at <= $5::timestamptz THEN 'expired' ELSE 'running' END,
    attempts = CASE WHEN t.expires_at <= $5::timestamptz THEN t.attempts ELSE t.attempts + 1 END,
    worker_id = CASE WHEN t.expires_at <= $5::timestamptz THEN t.worker_id ELSE $4::text END,
    claim = CASE WHEN t.expires_at <= $5::timestamptz THEN t.claim
                 ELSE coalesce($4::text, 'anonymous') || ':' || (t.attempts + 1) || ':'
                      || substr(md5(random()::text), 1, 8) END,
    started_at = CASE WHEN t.expires_at <= $5::timestamptz THEN t.started_at ELSE $5::timestamptz END,
    lease_expires_at = CASE WHEN t.expires_at <= $5::timestamptz THEN NULL ELSE $6::timestamptz END,
    cancel_requested = CASE WHEN t.expires_at <= $5::timestamptz THEN t.cancel_requested ELSE false END,
    finished_at = CASE WHEN t.expires_at <= $5::timestamptz THEN $5::timestamptz ELSE t.finished_at END,
    error_type = CASE WHEN t.expires_at <= $5::timestamptz THEN 'TaskExpired' ELSE t.error_type END,
    error_message = CASE WHEN t.expires_at <= $5::timestamptz THEN 'expired before it started'
                         ELSE t.error_message END
FROM candidates c
WHERE t.project = $1 AND t.id = c.id
RETURNING t.*, c.rank;

-- name: claim_ids
-- $1 project, $2 queues in the order to serve them, $3 limit, $4 worker id, $5 now, $6 lease
-- deadline, $7 the ids of tasks a claimer heard were enqueued since its last claim found nothing,
-- $8 when that claim ran. The candidates of `claim` taken by primary key among those ids (queue
-- order, priority, ready time, enqueue order), followed by claim's UPDATE (queue.py joins them).
-- None when a delayed task of these queues came due since $8: no notification announced it, it
-- may come first, and the claimer then claims the usual way (see _wait_and_claim).
WITH candidates AS (
    SELECT t.id, q.rank
    FROM tasks t
    JOIN unnest($2::text[]) WITH ORDINALITY AS q(name, rank) ON q.name = t.queue
    WHERE t.project = $1 AND t.id = ANY($7::text[]) AND t.status = 'pending'
      AND t.ready_at <= $5::timestamptz
      AND NOT EXISTS (
          SELECT 1 FROM tasks d
          WHERE d.project = $1 AND d.queue = ANY($2::text[]) AND d.status = 'pending'
            AND d.eta > $8::timestamptz AND d.eta <= $5::timestamptz)
    ORDER BY q.rank, t.priority DESC, t.ready_at, t.seq
    LIMIT $3
    FOR UPDATE OF t SKIP LOCKED
)

-- name: bury
-- $1 project, $2 ids, $3 claims, $4 messages, $5 now, $6 error types: claimed tasks whose
-- payload cannot be decoded (poison) or whose record is corrupt end DEAD at once, so the
-- claimer carries on with the next task.
UPDATE tasks t SET
    status = 'dead',
    error_type = p.kind,
    error_message = p.message,
    finished_at = $5::timestamptz,
    lease_expires_at = NULL
FROM unnest($2::text[], $3::text[], $4::text[], $6::text[]) AS p(id, claim, message, kind)
WHERE t.project = $1 AND t.id = p.id AND t.claim = p.claim AND (t.status = 'running') IS TRUE
RETURNING t.*;

-- name: next_due
-- $1 project, $2 queues, $3 now: when the next delayed task of these queues comes due.
SELECT min(eta) FROM tasks
WHERE project = $1 AND queue = ANY($2::text[]) AND status = 'pending' AND eta > $3;

-- name: heartbeat
-- $1 project, $2 ids, $3 claims, $4 new lease deadline.
UPDATE tasks t SET lease_expires_at = $4::timestamptz
FROM unnest($2::text[], $3::text[]) AS c(id, claim)
WHERE t.project = $1 AND t.id = c.id AND t.claim = c.claim AND (t.status = 'running') IS TRUE
RETURNING t.id, t.cancel_requested;

-- name: set_progress
-- $1 project, $2 ids, $3 claims, $4 progress envelopes: each running task's progress, written
-- only under its current claim (see SupportsProgress); returns the positions written.
UPDATE tasks t SET progress = p.progress
FROM unnest($2::text[], $3::text[], $4::bytea[]) WITH ORDINALITY AS p(id, claim, progress, ord)
WHERE t.project = $1 AND t.id = p.id AND t.claim = p.claim AND (t.status = 'running') IS TRUE
RETURNING p.ord;

-- name: complete
-- $1 project, $2 ids, $3 claims, $4 now. A stale claim matches no row and is refused.
-- waited_on is read from the row as updated: if a dependent's enqueue flagged it concurrently,
-- this UPDATE waited for that commit and sees the flag.
UPDATE tasks t SET status = 'success', finished_at = $4::timestamptz, lease_expires_at = NULL
FROM unnest($2::text[], $3::text[]) AS c(id, claim)
WHERE t.project = $1 AND t.id = c.id AND t.claim = c.claim AND (t.status = 'running') IS TRUE
RETURNING t.id, t.waited_on;

-- name: complete_with_results
-- $1 project, $2 ids, $3 claims, $4 now, $5..$9 the results (payload, status, schedule id,
-- finished at, expires at; payload NULL: no result), $10 the results channel. Acknowledgements
-- and results in ONE statement, so one transaction: a result is stored exactly when its task is
-- acknowledged, and waiters hear of it at commit (ids in the payload, '*' for an id too long).
WITH done AS (
    UPDATE tasks t SET status = 'success', finished_at = $4::timestamptz, lease_expires_at = NULL
    FROM unnest($2::text[], $3::text[]) AS c(id, claim)
    WHERE t.project = $1 AND t.id = c.id AND t.claim = c.claim AND (t.status = 'running') IS TRUE
    RETURNING t.id, t.waited_on
), saved AS (
    INSERT INTO results (project, task_id, status, schedule_id, finished_at, expires_at, payload)
    SELECT $1, r.id, r.status, r.schedule_id, r.finished_at, r.expires_at, r.payload
    FROM unnest($2::text[], $5::bytea[], $6::text[], $7::text[], $8::timestamptz[],
                $9::timestamptz[]) AS r(id, payload, status, schedule_id, finished_at, expires_at)
    WHERE r.payload IS NOT NULL AND r.id IN (SELECT id FROM done)
    ON CONFLICT (project, task_id) DO UPDATE SET
        status = excluded.status,
        schedule_id = excluded.schedule_id,
        finished_at = excluded.finished_at,
        expires_at = excluded.expires_at,
        payload = excluded.payload
    RETURNING task_id
), woke AS (
    SELECT pg_notify($10, string_agg(s.task_id, ','))
    FROM (SELECT CASE WHEN length(task_id) > 7000 THEN '*' ELSE task_id END AS task_id,
                 sum(length(task_id) + 1) OVER (ORDER BY task_id) / 7000 AS chunk
          FROM saved) AS s
    GROUP BY s.chunk
)
SELECT array(SELECT id FROM done) AS done,
       array(SELECT id FROM done WHERE waited_on) AS waited_on,
       (SELECT count(*) FROM woke) AS woke;

-- name: fail
-- $1 project, $2 id, $3 claim, $4 status asked for (pending = retry, dead, cancelled),
-- $5 error type, $6 message, $7 traceback, $8 retry at, $9 now, $10 queue channel.
-- The status is decided by the caller (omniq.queue.retry.decide): this only records it.
WITH updated AS (
    UPDATE tasks t SET
        status = $4::text,
        error_type = $5,
        error_message = $6,
        error_traceback = $7,
        eta = CASE WHEN $4::text = 'pending' THEN $8::timestamptz ELSE t.eta END,
        claim = CASE WHEN $4::text = 'pending' THEN NULL ELSE t.claim END,
        lease_expires_at = NULL,
        finished_at = CASE WHEN $4::text = 'pending' THEN t.finished_at ELSE $9::timestamptz END
    WHERE t.project = $1 AND t.id = $2 AND t.claim = $3 AND t.status = 'running'
    RETURNING t.*
)
SELECT u.*, CASE WHEN u.status = 'pending' THEN pg_notify($10, u.queue) END AS woke
FROM updated u;

-- name: release
-- $1 project, $2 id, $3 claim, $4 now, $5 queue channel, $6 eta (null: ready now). Back to
-- pending without counting the attempt; a task asked to cancel ends CANCELLED instead, so the
-- request is not lost.
WITH updated AS (
    UPDATE tasks t SET
        status = CASE WHEN t.cancel_requested THEN 'cancelled' ELSE 'pending' END,
        eta = CASE WHEN t.cancel_requested THEN t.eta ELSE coalesce($6::timestamptz, t.eta) END,
        attempts = CASE WHEN t.cancel_requested THEN t.attempts
                        ELSE greatest(0, t.attempts - 1) END,
        claim = CASE WHEN t.cancel_requested THEN t.claim ELSE NULL END,
        worker_id = CASE WHEN t.cancel_requested THEN t.worker_id ELSE NULL END,
        started_at = CASE WHEN t.cancel_requested THEN t.started_at ELSE NULL END,
        lease_expires_at = NULL,
        error_type = CASE WHEN t.cancel_requested THEN 'Cancelled' ELSE t.error_type END,
        error_message = CASE WHEN t.cancel_requested THEN 'cancelled while running'
                             ELSE t.error_message END,
        finished_at = CASE WHEN t.cancel_requested THEN $4::timestamptz ELSE t.finished_at END
    WHERE t.project = $1 AND t.id = $2 AND t.claim = $3 AND t.status = 'running'
    RETURNING t.*
)
SELECT u.*, CASE WHEN u.status = 'pending' THEN pg_notify($5, u.queue) END AS woke
FROM updated u;

-- name: cancel
-- $1 project, $2 id, $3 now. Waiting work ends CANCELLED; a running task is asked to stop.
UPDATE tasks t SET
    status = CASE WHEN t.status IN ('pending', 'waiting') THEN 'cancelled' ELSE t.status END,
    cancel_requested = CASE WHEN t.status = 'running' THEN true ELSE t.cancel_requested END,
    error_type = CASE WHEN t.status IN ('pending', 'waiting') THEN 'Cancelled'
                      ELSE t.error_type END,
    error_message = CASE WHEN t.status IN ('pending', 'waiting') THEN 'cancelled before it started'
                         ELSE t.error_message END,
    finished_at = CASE WHEN t.status IN ('pending', 'waiting') THEN $3::timestamptz ELSE t.finished_at END
WHERE t.project = $1 AND t.id = $2 AND t.status IN ('pending', 'waiting', 'running')
RETURNING t.*;

-- name: requeue
-- $1 project, $2 id, $3 reset attempts, $4 queue channel: dead-letter re-drive.
WITH updated AS (
    UPDATE tasks t SET
        status = 'pending',
        attempts = CASE WHEN $3::boolean THEN 0 ELSE t.attempts END,
        eta = NULL,
        expires_at = NULL,
        finished_at = NULL,
        claim = NULL,
        worker_id = NULL,
        lease_expires_at = NULL,
        error_type = NULL,
        error_message = NULL,
        error_traceback = NULL,
        cancel_requested = false
    WHERE t.project = $1 AND t.id = $2
      AND t.status IN ('dead', 'cancelled', 'expired', 'failed')
    RETURNING t.*
)
SELECT u.*, pg_notify($4, u.queue) AS woke FROM updated u;

-- name: recover_expired
-- $1 project, $2 now, $3 queue channel: running tasks whose lease ran out go back to pending,
-- or DEAD when out of attempts.
WITH lost AS (
    SELECT id FROM tasks
    WHERE project = $1 AND status = 'running' AND lease_expires_at <= $2::timestamptz
    FOR UPDATE SKIP LOCKED
), updated AS (
    UPDATE tasks t SET
        status = CASE WHEN t.attempts >= t.max_attempts THEN 'dead' ELSE 'pending' END,
        error_type = CASE WHEN t.attempts >= t.max_attempts THEN 'LeaseExpired'
                          ELSE t.error_type END,
        error_message = CASE WHEN t.attempts >= t.max_attempts
                             THEN 'lease expired on attempt ' || t.attempts || ' of '
                                  || t.max_attempts
                             ELSE t.error_message END,
        finished_at = CASE WHEN t.attempts >= t.max_attempts THEN $2::timestamptz ELSE t.finished_at END,
        eta = CASE WHEN t.attempts >= t.max_attempts THEN t.eta ELSE NULL END,
        claim = CASE WHEN t.attempts >= t.max_attempts THEN t.claim ELSE NULL END,
        lease_expires_at = NULL
    FROM lost
    WHERE t.project = $1 AND t.id = lost.id
    RETURNING t.*
)
SELECT u.*, CASE WHEN u.status = 'pending' THEN pg_notify($3, u.queue) END AS woke
FROM updated u;

-- name: expire
-- $1 project, $2 now: the TTL sweep.
WITH doomed AS (
    SELECT id FROM tasks
    WHERE project = $1 AND status IN ('pending', 'waiting') AND expires_at <= $2::timestamptz
    FOR UPDATE SKIP LOCKED
)
UPDATE tasks t SET
    status = 'expired',
    error_type = 'TaskExpired',
    error_message = 'expired before it started',
    finished_at = $2::timestamptz,
    lease_expires_at = NULL
FROM doomed
WHERE t.project = $1 AND t.id = doomed.id
RETURNING t.*;

-- name: promote
-- $1 project, $2 ids, $3 queue channel: WAITING -> PENDING (compare-and-set on the status, so of
-- two settlers only one moves a task), ready at once or at its eta; claimers are woken as by an
-- enqueue (an idle one also re-reads when the next delayed task comes due).
WITH updated AS (
    UPDATE tasks t SET status = 'pending'
    FROM unnest($2::text[]) AS c(id)
    WHERE t.project = $1 AND t.id = c.id AND (t.status = 'waiting') IS TRUE
    RETURNING t.*
), woke AS (
    SELECT count(pg_notify($3, q.queue)) AS n FROM (SELECT DISTINCT queue FROM updated) AS q
)
SELECT u.* FROM updated u, woke;

-- name: cancel_waiting
-- $1 project, $2 ids, $3 reasons, $4 now: WAITING -> CANCELLED because a dependency failed.
UPDATE tasks t SET
    status = 'cancelled',
    error_type = 'DependencyFailed',
    error_message = c.reason,
    finished_at = $4::timestamptz
FROM unnest($2::text[], $3::text[]) AS c(id, reason)
WHERE t.project = $1 AND t.id = c.id AND (t.status = 'waiting') IS TRUE
RETURNING t.*;

-- name: dependents
-- $1 project, $2 ids that just finished: the WAITING tasks naming any of them, from
-- tasks_waiting_deps_idx (waiting rows only, so an empty index when nothing waits).
SELECT * FROM tasks
WHERE project = $1 AND status = 'waiting' AND depends_on && $2::text[];

-- name: get_tasks
SELECT * FROM tasks WHERE project = $1 AND id = ANY($2::text[]);

-- name: get_task
SELECT * FROM tasks WHERE project = $1 AND id = $2;

-- name: list_tasks
-- A template (omniq.storage.postgres._listing fills it once per shape): $1 project, $2 queue or
-- NULL, $3 status or NULL, $4 the cursor's seq (exclusive; NULL: from the start), $5 offset +
-- limit, $6 limit, $7 offset, and with functions $8 their names (an array). {cmp}/{start}/{dir}
-- give the order (enqueue order, or newest first); {funcs} and {func_match} the function filter.
-- Its cost does not grow with the store: for each (queue, status) that has tasks (the kept
-- counts), and each function, one range of tasks_list_idx (with functions tasks_func_idx, of
-- migration 0005) from the cursor on, at most offset + limit rows each, then the merge.
SELECT t.* FROM (
    SELECT queue, status FROM task_counts
    WHERE project = $1 AND ($2::text IS NULL OR queue = $2) AND ($3::text IS NULL OR status = $3)
    GROUP BY queue, status HAVING sum(n) > 0
) AS g {funcs}
CROSS JOIN LATERAL (
    SELECT * FROM tasks AS x
    WHERE x.project = $1 {func_match}AND x.status = g.status AND x.queue = g.queue
      AND x.seq {cmp} coalesce($4::bigint, {start})
    ORDER BY x.seq {dir} LIMIT $5
) AS t
ORDER BY t.seq {dir} LIMIT $6 OFFSET $7;

-- name: task_functions
-- The distinct functions of the tasks, in name order: one seek of tasks_func_idx per name (a
-- loose index scan), however many tasks each has. $2: at most that many.
WITH RECURSIVE f(name) AS (
    SELECT min(func) FROM tasks WHERE project = $1
    UNION ALL
    SELECT (SELECT min(x.func) FROM tasks AS x WHERE x.project = $1 AND x.func > f.name)
    FROM f WHERE f.name IS NOT NULL
)
SELECT name FROM f WHERE name IS NOT NULL LIMIT $2;

-- name: seq_of
SELECT seq FROM tasks WHERE project = $1 AND id = $2;

-- name: queue_size
-- The counts are kept by the triggers of migration 0004: a few rows, whatever the store's size.
SELECT coalesce(sum(n), 0)::bigint FROM task_counts
WHERE project = $1 AND queue = $2 AND status = 'pending';

-- name: stats
-- shards: how many rows a count was summed from (the reader folds them when they pile up)
SELECT queue, status, sum(n)::bigint AS n, count(*) AS shards FROM task_counts
WHERE project = $1 GROUP BY queue, status;

-- name: fold_counts
-- The rows of connections that are gone, added into shard 0; rows in use are skipped.
WITH gone AS (
    DELETE FROM task_counts
    WHERE ctid IN (
        SELECT ctid FROM task_counts
        WHERE project = $1 AND shard <> 0 AND shard NOT IN (SELECT pid FROM pg_stat_activity)
        FOR UPDATE SKIP LOCKED
    )
    RETURNING queue, status, n
)
INSERT INTO task_counts AS c (project, queue, status, shard, n)
SELECT $1, queue, status, 0, sum(n) FROM gone GROUP BY queue, status ORDER BY queue, status
ON CONFLICT (project, queue, status, shard) DO UPDATE SET n = c.n + excluded.n;

-- name: purge
-- $1 project, $2 queue or NULL (every queue), $3 the statuses to delete.
WITH gone AS (
    DELETE FROM tasks
    WHERE project = $1 AND ($2::text IS NULL OR queue = $2) AND status = ANY($3::text[])
    RETURNING 1
)
SELECT count(*) FROM gone;

-- ============================================================================================
-- schedules (the payload is the schedule of record; columns are there to query by)
-- ============================================================================================

-- name: save_schedule
INSERT INTO schedules (project, id, queue, state, next_run_at, created_at, payload)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (project, id) DO UPDATE SET
    queue = excluded.queue,
    state = excluded.state,
    next_run_at = excluded.next_run_at,
    payload = excluded.payload;

-- name: get_schedule
SELECT payload FROM schedules WHERE project = $1 AND id = $2;

-- name: lock_schedule
SELECT payload FROM schedules WHERE project = $1 AND id = $2 FOR UPDATE;

-- name: update_schedule
UPDATE schedules SET queue = $3, state = $4, next_run_at = $5, payload = $6
WHERE project = $1 AND id = $2;

-- name: list_schedules
SELECT payload FROM schedules
WHERE project = $1 AND ($2::text IS NULL OR state = $2)
ORDER BY created_at, id;

-- name: delete_schedule
DELETE FROM schedules WHERE project = $1 AND id = $2 RETURNING id;

-- name: due_schedules
SELECT payload FROM schedules
WHERE project = $1 AND state = 'active' AND next_run_at <= $2
ORDER BY next_run_at, id;

-- ============================================================================================
-- the worker registry (opaque JSON payloads, kept until they expire)
-- ============================================================================================

-- name: save_worker
INSERT INTO workers (project, id, expires_at, payload) VALUES ($1, $2, $3, $4)
ON CONFLICT (project, id) DO UPDATE SET expires_at = excluded.expires_at,
                                        payload = excluded.payload;

-- name: list_workers
-- $1 project, $2 now: the live records; expired ones are deleted on the way.
WITH gone AS (
    DELETE FROM workers WHERE project = $1 AND expires_at <= $2::timestamptz
)
SELECT payload FROM workers WHERE project = $1 AND expires_at > $2::timestamptz ORDER BY id;

-- name: delete_worker
DELETE FROM workers WHERE project = $1 AND id = $2 RETURNING id;

-- ============================================================================================
-- results
-- ============================================================================================

-- name: set_results
-- $1 project, $2..$7 one array per column, $8 the results channel.
WITH saved AS (
    INSERT INTO results (project, task_id, status, schedule_id, finished_at, expires_at, payload)
    SELECT $1, r.task_id, r.status, r.schedule_id, r.finished_at, r.expires_at, r.payload
    FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[],
                $7::bytea[]) AS r(task_id, status, schedule_id, finished_at, expires_at, payload)
    ON CONFLICT (project, task_id) DO UPDATE SET
        status = excluded.status,
        schedule_id = excluded.schedule_id,
        finished_at = excluded.finished_at,
        expires_at = excluded.expires_at,
        payload = excluded.payload
    RETURNING task_id
), woke AS (
    SELECT pg_notify($8, string_agg(s.task_id, ','))
    FROM (SELECT CASE WHEN length(task_id) > 7000 THEN '*' ELSE task_id END AS task_id,
                 sum(length(task_id) + 1) OVER (ORDER BY task_id) / 7000 AS chunk
          FROM saved) AS s
    GROUP BY s.chunk
)
SELECT count(*) FROM woke;

-- name: get_results
SELECT task_id, payload FROM results WHERE project = $1 AND task_id = ANY($2::text[]);

-- name: result_exists
SELECT EXISTS (SELECT 1 FROM results WHERE project = $1 AND task_id = $2);

-- name: latest_result
SELECT payload FROM results
WHERE project = $1 AND schedule_id = $2
ORDER BY finished_at DESC
LIMIT 1;

-- name: delete_result
DELETE FROM results WHERE project = $1 AND task_id = $2 RETURNING task_id;

-- name: cleanup_results
WITH gone AS (
    DELETE FROM results WHERE project = $1 AND expires_at <= $2 RETURNING 1
)
SELECT count(*) FROM gone;

-- ============================================================================================
-- events (plain columns and jsonb, never pickled)
-- ============================================================================================

-- name: log_events
INSERT INTO events (project, id, task_id, event_type, ts, queue, worker_id, schedule_id, func,
                    attempt, details)
SELECT $1, e.id, e.task_id, e.event_type, e.ts, e.queue, e.worker_id, e.schedule_id, e.func,
       e.attempt, e.details
FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::text[],
            $8::text[], $9::text[], $10::int[], $11::jsonb[])
     AS e(id, task_id, event_type, ts, queue, worker_id, schedule_id, func, attempt, details)
ON CONFLICT (project, id) DO NOTHING;

-- name: get_events
-- {where} is built only from the fixed filter fragments in events.py; {order} is ASC or DESC.
SELECT id, task_id, event_type, ts, queue, worker_id, schedule_id, func, attempt, details
FROM events
WHERE project = $1{where}
ORDER BY ts {order}, id {order}
LIMIT $2 OFFSET $3;

-- name: cleanup_events
WITH gone AS (
    DELETE FROM events WHERE project = $1 AND ts < $2 RETURNING 1
)
SELECT count(*) FROM gone;

-- name: take_token
-- $1 project, $2 key, $3 interval, $4 burst, $5 now (seconds since the epoch). One token from
-- the bucket (GCRA, see migration 0007): the SET expressions read the row as it was, so one
-- statement decides, moves tat when a token is taken, and records the answer in wait.
INSERT INTO rate_buckets AS b (project, key, tat, interval, burst, wait)
VALUES ($1, $2, $5::float8 + $3::float8, $3, $4, 0)
ON CONFLICT (project, key) DO UPDATE SET
    tat = CASE WHEN b.tat - (excluded.burst - 1) * excluded.interval > $5::float8 THEN b.tat
               ELSE greatest(b.tat, $5::float8) + excluded.interval END,
    wait = greatest(0, b.tat - (excluded.burst - 1) * excluded.interval - $5::float8),
    interval = excluded.interval,
    burst = excluded.burst
RETURNING wait;

-- name: acquire_slot
SELECT acquire_slot($1, $2, $3, $4, $5, $6);

-- name: release_slot
DELETE FROM concurrency_slots WHERE project = $1 AND key = $2 AND holder = $3;

-- name: sweep_buckets
-- $1 project, $2 now: buckets full again (a missing bucket is a full one). A take_token racing
-- with it either updates the row first (its new tat is rechecked, and kept) or inserts anew.
DELETE FROM rate_buckets WHERE project = $1 AND tat <= $2;

-- name: sweep_lock_keys
-- $1 project, $2 now: the keys without a live slot as this statement sees them, locked so no
-- acquire_slot runs on them until sweep_keys (in the same transaction) has decided; a key being
-- acquired right now is skipped, not waited for.
SELECT c.key FROM concurrency_keys c
WHERE c.project = $1 AND NOT EXISTS (
    SELECT 1 FROM concurrency_slots s
    WHERE s.project = c.project AND s.key = c.key AND s.expires_at > $2)
FOR UPDATE SKIP LOCKED;

-- name: sweep_keys
-- $1 project, $2 now, $3 the keys sweep_lock_keys locked: checked again (a slot committed just
-- before the lock is seen now) and deleted with their lapsed slots.
WITH gone AS (
    DELETE FROM concurrency_keys c
    WHERE c.project = $1 AND c.key = ANY($3::text[]) AND NOT EXISTS (
        SELECT 1 FROM concurrency_slots s
        WHERE s.project = c.project AND s.key = c.key AND s.expires_at > $2)
    RETURNING c.key
), slots AS (
    DELETE FROM concurrency_slots s USING gone WHERE s.project = $1 AND s.key = gone.key
)
SELECT count(*) FROM gone;

-- name: sweep_slots
-- $1 project, $2 now: lapsed slots of keys still in use (acquire_slot drops those of the key
-- it takes; this catches keys nobody takes any more while one holder still runs)
DELETE FROM concurrency_slots WHERE project = $1 AND expires_at <= $2;

-- name: limit_buckets
SELECT key, tat, interval, burst FROM rate_buckets WHERE project = $1;

-- name: limit_slots
-- $1 project, $2 now (seconds since the epoch): each key, its limit and its live holders.
SELECT c.key, c.lim,
       (SELECT count(*) FROM concurrency_slots s
        WHERE s.project = c.project AND s.key = c.key AND s.expires_at > $2) AS running
FROM concurrency_keys c WHERE c.project = $1;
