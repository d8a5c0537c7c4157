-- The statements of the SQLite backend, each under a `-- name:` header (see omniq.storage._sql).
--
-- `{columns}` stands for the columns every task read returns, in the order queue.py indexes them
-- (`{t_columns}`: the same from `omniq_tasks AS t`); other `{...}` are filled per call: the
-- queues of a claim, the filters of a listing. Parameters are `?` or `:name`.
-- Statements that find tasks by a batch of ids take them as one JSON array (`json_each`).

-- ----------------------------------------------------------------------------------- tasks --

-- name: seen_ids
SELECT id FROM omniq_tasks WHERE project = ? AND id IN (SELECT value FROM json_each(?));

-- name: insert_task
INSERT INTO omniq_tasks (project, id, queue, status, priority, ready_at, created_at, func,
    schedule_id, max_retries, eta, expires_at, payload)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (project, id) DO NOTHING;

-- name: insert_dep
INSERT INTO omniq_task_deps (project, dep_id, task_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING;

-- A TTL sweep restricted to the queues of a claim ({names}: `:q0, :q1, ...`).
-- name: expire_queues
UPDATE omniq_tasks SET status = 'expired', finished_at = :now, lease_expires_at = NULL,
    error_type = 'TaskExpired', error_message = 'expired before it started'
WHERE project = :project AND expires_at IS NOT NULL AND status IN ('pending', 'waiting')
    AND expires_at <= :now AND queue IN ({names})
RETURNING {columns};

-- name: expire
UPDATE omniq_tasks SET status = 'expired', finished_at = :now, lease_expires_at = NULL,
    error_type = 'TaskExpired', error_message = 'expired before it started'
WHERE project = :project AND expires_at IS NOT NULL AND status IN ('pending', 'waiting')
    AND expires_at <= :now
RETURNING {columns};

-- One arm per requested queue ({i}: its position): its first `limit` tasks in claim order, an
-- index walk each. Pinned: without statistics the planner may pick omniq_tasks_due and sort
-- every ready task of the queue; the claim index yields them in claim order, LIMIT stops early.
-- name: claim_arm
SELECT * FROM (SELECT seq, {i} AS pos, priority, ready_at
    FROM omniq_tasks INDEXED BY omniq_tasks_claim
    WHERE project = :project AND queue = :q{i} AND status = 'pending' AND ready_at <= :now
    ORDER BY priority DESC, ready_at, seq LIMIT :limit)

-- The arms ({arms}, joined by UNION ALL) merged by queue position, claimed in one statement.
-- name: claim
UPDATE omniq_tasks SET status = 'running', attempts = attempts + 1, worker_id = :worker,
    started_at = :now, lease_expires_at = :lease_until, cancel_requested = 0,
    claim = COALESCE(:worker, 'anonymous') || ':' || (attempts + 1) || ':'
        || lower(hex(randomblob(4)))
WHERE seq IN (SELECT seq FROM ({arms}) ORDER BY pos, priority DESC, ready_at, seq LIMIT :limit)
RETURNING {columns};

-- name: mark_dead
UPDATE omniq_tasks SET status = 'dead', finished_at = ?, lease_expires_at = NULL,
    error_type = ?, error_message = ?
WHERE seq = ?;

-- Pending tasks whose ready_at is no number (written by something else): the claim never
-- reaches them (a text sorts after every number), so the claimer finds them here, at the end of
-- the due index's range of the queue, and makes them DEAD. One arm per queue, as claim_arm.
-- name: corrupt_arm
SELECT * FROM (SELECT seq FROM omniq_tasks INDEXED BY omniq_tasks_due
    WHERE project = :project AND queue = :q{i} AND status = 'pending' AND ready_at >= ''
    LIMIT :limit)

-- name: corrupt_pending
SELECT {columns} FROM omniq_tasks WHERE seq IN (SELECT seq FROM ({arms}) LIMIT :limit);

-- When the next delayed task of a queue comes due: one arm per queue, the earliest of them.
-- name: due_arm
SELECT MIN(ready_at) AS due FROM omniq_tasks
WHERE project = :project AND queue = :q{i} AND status = 'pending' AND ready_at > :now

-- name: due
SELECT MIN(due) FROM ({arms});

-- The claimed tasks of a batch, :pairs a JSON array of [id, claim]: each found by its id (the
-- "+status" keeps the planner off the status index, which would walk every running task of the
-- project once per batch).
-- name: heartbeat
UPDATE omniq_tasks SET lease_expires_at = :until
WHERE project = :project AND (id, claim) IN (SELECT json_extract(value, '$[0]'),
    json_extract(value, '$[1]') FROM json_each(:pairs)) AND +status = 'running'
RETURNING id, cancel_requested;

-- name: set_progress
-- A running task's progress, written only under its current claim (see SupportsProgress).
UPDATE omniq_tasks SET progress = :progress
WHERE project = :project AND id = :id AND claim = :claim AND +status = 'running'
RETURNING id;

-- name: complete
UPDATE omniq_tasks SET status = 'success', finished_at = :now, lease_expires_at = NULL
WHERE project = :project AND (id, claim) IN (SELECT json_extract(value, '$[0]'),
    json_extract(value, '$[1]') FROM json_each(:pairs)) AND +status = 'running'
RETURNING id, claim;

-- name: fail_retry
UPDATE omniq_tasks SET status = 'pending', eta = :retry_at,
    ready_at = COALESCE(:retry_at, created_at), claim = NULL, lease_expires_at = NULL,
    error_type = :error_type, error_message = :error_message, error_traceback = :error_traceback
WHERE project = :project AND id = :id AND claim = :claim AND status = 'running'
RETURNING {columns};

-- name: fail_end
UPDATE omniq_tasks SET status = :status, finished_at = :now, lease_expires_at = NULL,
    error_type = :error_type, error_message = :error_message, error_traceback = :error_traceback
WHERE project = :project AND id = :id AND claim = :claim AND status = 'running'
RETURNING {columns};

-- name: release_cancelled
UPDATE omniq_tasks SET status = 'cancelled', finished_at = :now, lease_expires_at = NULL,
    error_type = 'Cancelled', error_message = 'cancelled while running'
WHERE project = :project AND id = :id AND claim = :claim AND status = 'running'
    AND cancel_requested = 1
RETURNING {columns};

-- Handed back untouched: the attempt it was claimed for does not count; ready at :eta if given.
-- name: release
UPDATE omniq_tasks SET status = 'pending', attempts = MAX(0, attempts - 1), claim = NULL,
    lease_expires_at = NULL, worker_id = NULL, started_at = NULL, cancel_requested = 0,
    eta = COALESCE(:eta, eta), ready_at = COALESCE(:eta, ready_at)
WHERE project = :project AND id = :id AND claim = :claim AND status = 'running'
RETURNING {columns};

-- name: cancel_waiting_or_pending
UPDATE omniq_tasks SET status = 'cancelled', finished_at = :now, lease_expires_at = NULL,
    error_type = 'Cancelled', error_message = 'cancelled before it started'
WHERE project = :project AND id = :id AND status IN ('pending', 'waiting')
RETURNING {columns};

-- name: cancel_running
UPDATE omniq_tasks SET cancel_requested = 1
WHERE project = :project AND id = :id AND status = 'running'
RETURNING {columns};

-- name: task_by_id
SELECT {columns} FROM omniq_tasks WHERE project = :project AND id = :id;

-- name: requeue
UPDATE omniq_tasks SET status = 'pending', attempts = CASE WHEN :reset THEN 0 ELSE attempts END,
    eta = NULL, expires_at = NULL, ready_at = created_at, finished_at = NULL, claim = NULL,
    worker_id = NULL, lease_expires_at = NULL, error_type = NULL, error_message = NULL,
    error_traceback = NULL, cancel_requested = 0
WHERE project = :project AND id = :id AND status IN ('dead', 'cancelled', 'expired', 'failed')
RETURNING {columns};

-- name: recover_dead
UPDATE omniq_tasks SET status = 'dead', finished_at = :now, lease_expires_at = NULL,
    error_type = 'LeaseExpired',
    error_message = 'lease expired on attempt ' || attempts || ' of ' || (max_retries + 1)
WHERE project = :project AND status = 'running' AND lease_expires_at IS NOT NULL
    AND lease_expires_at <= :now AND attempts >= max_retries + 1
RETURNING {columns};

-- name: recover_pending
UPDATE omniq_tasks SET status = 'pending', eta = NULL, ready_at = created_at, claim = NULL,
    lease_expires_at = NULL
WHERE project = :project AND status = 'running' AND lease_expires_at IS NOT NULL
    AND lease_expires_at <= :now
RETURNING {columns};

-- name: get_tasks
SELECT {columns} FROM omniq_tasks
WHERE project = :project AND id IN (SELECT value FROM json_each(:ids));

-- A page of tasks in enqueue order ({cmp} `>`, {dir} ASC) or newest first (`<`, DESC), from a
-- cursor seq (exclusive). Its cost does not grow with the store: for each (queue, status) that
-- has tasks (the kept counts, {groups}: the filters asked for) one range of
-- omniq_tasks_queue_status from the cursor on, at most offset + limit rows each, then the merge.
-- name: list_tasks
SELECT {t_columns} FROM omniq_tasks AS t
WHERE t.seq IN (
    SELECT x.seq FROM omniq_task_counts AS g, omniq_tasks AS x
    WHERE g.project = ? AND g.n > 0 {groups}
      AND x.seq IN (
          SELECT y.seq FROM omniq_tasks AS y
          WHERE y.project = g.project AND y.queue = g.queue AND y.status = g.status
            AND y.seq {cmp} ?
          ORDER BY y.seq {dir} LIMIT ?
      )
)
ORDER BY t.seq {dir} LIMIT ? OFFSET ?;

-- The tasks of one function in one queue from a cursor seq (exclusive), {cmp}/{dir} as above:
-- one range of omniq_tasks_func_queue, which holds no status (claims and acknowledgements never
-- touch it); {status} is empty, or `AND status = ?` checked on the row, for a status that is not
-- rare in the queue (storage/sqlite/_listing.py decides from the kept counts).
-- name: func_range
SELECT {columns} FROM omniq_tasks INDEXED BY omniq_tasks_func_queue
WHERE project = ? AND func = ? AND queue = ? AND seq {cmp} ? {status}
ORDER BY seq {dir} LIMIT ?;

-- The same for a status that is rare in the queue: its range of omniq_tasks_queue_status, at
-- most that many rows (the kept count), the function checked on the row.
-- name: status_func_range
SELECT {columns} FROM omniq_tasks INDEXED BY omniq_tasks_queue_status
WHERE project = ? AND queue = ? AND status = ? AND seq {cmp} ? AND func = ?
ORDER BY seq {dir} LIMIT ?;

-- The distinct functions of the tasks, in name order: one seek of omniq_tasks_func_queue per name
-- (a loose index scan), however many tasks each has.
-- name: task_functions
WITH RECURSIVE f(name) AS (
    SELECT (SELECT min(func) FROM omniq_tasks WHERE project = :project)
    UNION ALL
    SELECT (SELECT min(func) FROM omniq_tasks WHERE project = :project AND func > f.name)
    FROM f WHERE f.name IS NOT NULL
)
SELECT name FROM f WHERE name IS NOT NULL LIMIT :limit;

-- name: seq_of
SELECT seq FROM omniq_tasks WHERE project = ? AND id = ?;

-- The counts are kept by the triggers of migration 3: a few rows, whatever the store's size.
-- name: queue_size
SELECT COALESCE(SUM(n), 0) FROM omniq_task_counts
WHERE project = ? AND queue = ? AND status = 'pending';

-- name: stats
SELECT queue, status, n FROM omniq_task_counts WHERE project = ? AND n <> 0;

-- {where}: `project = ?`, `queue = ?` when one queue is purged, and `status IN (...)`.
-- name: purge
DELETE FROM omniq_tasks WHERE {where};

-- ---------------------------------------------------------------------------- dependencies --
-- Every statement finds its rows by id through an index (the CROSS JOINs fix the join order,
-- "+status" keeps the planner off the status index), never by walking the waiting rows: a large
-- graph waiting must not slow every acknowledgement down.

-- Which of the ids (a JSON array) a WAITING task depends on.
-- name: waited_on
SELECT DISTINCT d.dep_id FROM json_each(?) AS j
CROSS JOIN omniq_task_deps AS d ON d.project = ? AND d.dep_id = j.value;

-- The WAITING tasks that depend on any of :ids (omniq_task_deps only holds waiting ones).
-- name: dependents
SELECT {t_columns} FROM json_each(:ids) AS j
CROSS JOIN omniq_task_deps AS d ON d.project = :project AND d.dep_id = j.value
CROSS JOIN omniq_tasks AS t ON t.project = :project AND t.id = d.task_id
WHERE +t.status = 'waiting';

-- name: promote
UPDATE omniq_tasks SET status = 'pending'
WHERE project = :project AND id IN (SELECT value FROM json_each(:ids)) AND +status = 'waiting'
RETURNING {columns};

-- One statement per task, run together in one transaction (an UPDATE ... FROM json_each would
-- let the planner walk the project's rows instead of finding each by id).
-- name: cancel_waiting
UPDATE omniq_tasks SET status = 'cancelled', finished_at = ?, lease_expires_at = NULL,
    error_type = 'DependencyFailed', error_message = ?
WHERE project = ? AND id = ? AND status = 'waiting'
RETURNING {columns};

-- --------------------------------------------------------------------------------- workers --

-- name: save_worker
INSERT INTO omniq_workers (project, worker_id, expires_at, payload) VALUES (?, ?, ?, ?)
ON CONFLICT (project, worker_id)
DO UPDATE SET expires_at = excluded.expires_at, payload = excluded.payload;

-- A worker killed without saying goodbye leaves its record: dropped on the next listing.
-- name: drop_expired_workers
DELETE FROM omniq_workers WHERE project = ? AND expires_at <= ?;

-- name: list_workers
SELECT payload FROM omniq_workers WHERE project = ? ORDER BY worker_id;

-- name: delete_worker
DELETE FROM omniq_workers WHERE project = ? AND worker_id = ?;

-- ------------------------------------------------------------------------------- schedules --
-- The payload is the schedule of record; state and next_run_at are copied into columns so that
-- due schedules are found by an index, and next_run_at is the compare-and-set token.

-- name: save_schedule
INSERT INTO omniq_schedules (project, id, queue, state, next_run_at, payload)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (project, id) DO UPDATE SET queue = excluded.queue, state = excluded.state,
    next_run_at = excluded.next_run_at, payload = excluded.payload;

-- name: get_schedule
SELECT next_run_at, payload FROM omniq_schedules WHERE project = ? AND id = ?;

-- name: list_schedules
SELECT payload FROM omniq_schedules WHERE project = ? ORDER BY rowid;

-- name: list_schedules_in_state
SELECT payload FROM omniq_schedules WHERE project = ? AND state = ? ORDER BY rowid;

-- name: delete_schedule
DELETE FROM omniq_schedules WHERE project = ? AND id = ?;

-- name: due_schedules
SELECT payload FROM omniq_schedules
WHERE project = ? AND state = 'active' AND next_run_at IS NOT NULL AND next_run_at <= ?
ORDER BY next_run_at;

-- --------------------------------------------------------------------------------- results --

-- name: upsert_result
INSERT INTO omniq_results (project, task_id, status, schedule_id, finished_at, expires_at,
    payload)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (project, task_id) DO UPDATE SET status = excluded.status,
    schedule_id = excluded.schedule_id, finished_at = excluded.finished_at,
    expires_at = excluded.expires_at, payload = excluded.payload;

-- name: get_result
SELECT task_id, payload FROM omniq_results WHERE project = ? AND task_id = ?;

-- name: get_results
SELECT task_id, payload FROM omniq_results
WHERE project = ? AND task_id IN (SELECT value FROM json_each(?));

-- name: found_results
SELECT task_id FROM omniq_results
WHERE project = ? AND task_id IN (SELECT value FROM json_each(?));

-- name: latest_result
SELECT payload FROM omniq_results
WHERE project = ? AND schedule_id = ? AND (expires_at IS NULL OR expires_at > ?)
ORDER BY finished_at DESC, rowid DESC LIMIT 1;

-- name: delete_result
DELETE FROM omniq_results WHERE project = ? AND task_id = ?;

-- name: expire_results
DELETE FROM omniq_results WHERE project = ? AND expires_at IS NOT NULL AND expires_at <= ?;

-- ---------------------------------------------------------------------------------- events --

-- name: insert_event
INSERT INTO omniq_events (project, id, task_id, event_type, timestamp, queue, worker_id,
    schedule_id, func, attempt, details)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (project, id) DO NOTHING;

-- {where}: `project = ?` and the filters asked for; {order}: ASC or DESC.
-- name: get_events
SELECT id, task_id, event_type, timestamp, queue, worker_id, schedule_id, func, attempt, details
FROM omniq_events WHERE {where}
ORDER BY timestamp {order}, id {order} LIMIT ? OFFSET ?;

-- name: delete_old_events
DELETE FROM omniq_events WHERE project = ? AND timestamp < ?;

-- name: limit_get
SELECT record FROM omniq_limits WHERE project = ? AND kind = ? AND key = ?;

-- name: limit_put
INSERT INTO omniq_limits (project, kind, key, record) VALUES (?, ?, ?, ?)
ON CONFLICT (project, kind, key) DO UPDATE SET record = excluded.record;

-- name: limit_all
SELECT kind, key, record FROM omniq_limits WHERE project = ?;

-- name: limit_delete
DELETE FROM omniq_limits WHERE project = ? AND kind = ? AND key = ?;
