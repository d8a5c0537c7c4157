-- OmniQ SQLite schema, version 5: the function index no longer holds the status.
--
-- omniq_tasks_func (migration 4) held (function, queue, status, seq): every claim and every
-- acknowledgement changes a task's status, so each moved the task's entry in that index too, about
-- 5 µs of SQLite's work per task in a drain. Without the status an entry is written once, when the
-- task is stored, and a status change leaves it alone. A page of one function reads one range per
-- queue from its cursor; with a status asked for, the status is checked on the row, or, where
-- the kept counts say that status is rare in the queue, omniq_tasks_queue_status is read instead
-- with the function checked on the row (storage/sqlite/_listing.py decides which).
DROP INDEX omniq_tasks_func;
CREATE INDEX omniq_tasks_func_queue ON omniq_tasks (project, func, queue, seq);
