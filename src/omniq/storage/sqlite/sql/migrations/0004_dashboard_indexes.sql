-- OmniQ SQLite schema, version 4: the indexes the dashboard's filters need on a big store.
--
-- Tasks by function, for list_tasks(func=...) and task_functions(): per (function, queue,
-- status) the tasks in enqueue order, so a page of one function reads one index range per
-- (queue, status) from its cursor, like the listing without a function, and the names of the
-- functions are found by one seek per name.
CREATE INDEX omniq_tasks_func ON omniq_tasks (project, func, queue, status, seq);

-- Events of one type in one queue (both filters of the events page at once), in time order;
-- without it the queue's index is read through, filtering by type.
CREATE INDEX omniq_events_queue_type ON omniq_events (project, queue, event_type, timestamp, id);
