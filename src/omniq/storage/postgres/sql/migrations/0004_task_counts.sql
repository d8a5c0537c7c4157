-- 0004: task counts by queue and status, kept by the store in the transaction of every change,
-- so that stats() and get_queue_size() read a few rows instead of counting the tasks.
-- Objects are unqualified: the migration runner sets search_path to the target schema.
--
-- No hot row: each connection adds its changes to rows of its own (shard = its backend pid), so
-- concurrent claims and acknowledgements never wait on one another's counts; a count is the sum
-- over the shards. Rows of connections that are gone are folded into shard 0 now and then (the
-- reader does it, skipping rows in use). Statement-level triggers: one small upsert per
-- statement, whatever the number of rows it changed.
CREATE TABLE task_counts (
    project text    NOT NULL,
    queue   text    NOT NULL,
    status  text    NOT NULL,
    shard   integer NOT NULL,
    n       bigint  NOT NULL,
    PRIMARY KEY (project, queue, status, shard)
);

-- SET search_path: the tables of this schema, whatever the connection that changes the tasks
CREATE FUNCTION task_counts_add() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    -- sorted, so that two connections sharing a shard (pid reuse) lock rows in one order
    IF TG_OP = 'INSERT' THEN
        INSERT INTO task_counts AS c (project, queue, status, shard, n)
        SELECT project, queue, status, pg_backend_pid(), count(*) FROM new_rows
        GROUP BY project, queue, status ORDER BY project, queue, status
        ON CONFLICT (project, queue, status, shard) DO UPDATE SET n = c.n + excluded.n;
    ELSIF TG_OP = 'DELETE' THEN
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

CREATE TRIGGER tasks_counts_insert AFTER INSERT ON tasks
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION task_counts_add();
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

-- The tasks already stored, counted once (writers wait for the lock meanwhile).
LOCK TABLE tasks IN SHARE ROW EXCLUSIVE MODE;
INSERT INTO task_counts (project, queue, status, shard, n)
SELECT project, queue, status, 0, count(*) FROM tasks GROUP BY project, queue, status;

