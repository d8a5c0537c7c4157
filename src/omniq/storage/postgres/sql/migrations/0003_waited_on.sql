-- 0003: a flag on each task that some other task depends on it.
-- Objects are unqualified: the migration runner sets search_path to the target schema.

-- Set (in the same statement) when a dependent naming this task is enqueued; the completion
-- returns it, so an acknowledgement batch that nobody waits on needs no dependents lookup.
-- The enqueue's UPDATE and the completion's UPDATE of the same row serialize on its row lock,
-- so a completion either sees the flag or commits before the dependent's own settle reads it.
ALTER TABLE tasks ADD COLUMN waited_on boolean NOT NULL DEFAULT false;
