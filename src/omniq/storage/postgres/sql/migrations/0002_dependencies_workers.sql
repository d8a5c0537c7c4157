-- 0002: task dependencies and the worker registry.
-- Objects are unqualified: the migration runner sets search_path to the target schema.

-- The ids a WAITING task depends on (also inside its payload; this copy is for the index).
ALTER TABLE tasks ADD COLUMN depends_on text[];

-- "Which waiting tasks name any of these ids?" runs after every acknowledgement batch. The index
-- holds waiting rows only, so it is empty (and the lookup nearly free) when nothing waits, and a
-- task leaves it by its status change alone: nothing to clean up.
CREATE INDEX tasks_waiting_deps_idx ON tasks USING gin (depends_on)
    WITH (fastupdate = off) WHERE status = 'waiting';

-- What each live worker publishes about itself (opaque JSON), until it stops renewing it.
CREATE TABLE workers (
    project    text        NOT NULL,
    id         text        NOT NULL,
    expires_at timestamptz NOT NULL,
    payload    bytea       NOT NULL,
    PRIMARY KEY (project, id)
);
