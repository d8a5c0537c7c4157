-- 0008: the statements that insert tasks add them to the kept counts themselves (a CTE of the
-- same statement, or a statement of the same transaction after a COPY), and the row-count
-- trigger no longer fires on INSERT. Its transition table, PL/pgSQL call and grouped upsert cost
-- a one-task enqueue ~40 us of server time, a tenth of its round trip; the same upsert written
-- into the statement costs almost nothing. UPDATE and DELETE keep their triggers: they change
-- tasks in many statements, an INSERT in four (queries.sql enqueue, enqueue_one,
-- enqueue_staged and _copy.py's COPY). Objects are unqualified: the migration runner sets
-- search_path to the target schema.
DROP TRIGGER tasks_counts_insert ON tasks;

CREATE OR REPLACE FUNCTION task_counts_add() RETURNS trigger LANGUAGE plpgsql
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
