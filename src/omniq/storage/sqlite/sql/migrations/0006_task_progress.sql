-- OmniQ SQLite schema, version 6: a running task's progress (omniq.current_task().set_progress),
-- the serializer's envelope of the last report, written under the task's claim. NULL for a task
-- that never reported, so tasks that do not report cost nothing.
ALTER TABLE omniq_tasks ADD COLUMN progress BLOB;
