-- 0006: a running task's progress (omniq.current_task().set_progress), the serializer's envelope
-- of its last report, written under the task's claim. NULL for a task that never reported: adding
-- a nullable column without a default rewrites nothing, and tasks that do not report cost nothing.
ALTER TABLE tasks ADD COLUMN progress bytea;
