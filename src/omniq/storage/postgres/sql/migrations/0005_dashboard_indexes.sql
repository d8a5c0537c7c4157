-- 0005: the indexes the dashboard's filters need on a big store.
-- Objects are unqualified: the migration runner sets search_path to the target schema.

-- Tasks by function, for list_tasks(func=...) and task_functions(): per (function, status,
-- queue) the tasks in enqueue order, so a page of one function reads one index range per
-- (status, queue) from its cursor, like the listing without a function, and the names of the
-- functions are found by one index seek per name.
CREATE INDEX tasks_func_idx ON tasks (project, func, status, queue, seq);

-- Events of one type in one queue (both filters of the events page at once), in time order;
-- without it the queue's index is read through, filtering by type.
CREATE INDEX events_queue_type_idx ON events (project, queue, event_type, ts, id);

-- Statistics now: a store with none yet (filled in bulk, not yet auto-analyzed) rates these
-- indexes no better than the ones without the function or the type, and may read those instead.
ANALYZE tasks;
ANALYZE events;
