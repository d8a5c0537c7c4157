-- 0007: rate limits and key concurrency limits, shared by every worker of a project.
-- Objects are unqualified: the migration runner sets search_path to the target schema.
--
-- Rate-limit buckets (issue 19): one row per bucket, a token bucket in its GCRA form: ``tat``
-- (the "theoretical arrival time", seconds since the epoch) moves one ``interval`` per token;
-- a token may be taken while tat - (burst - 1) * interval <= now. ``wait`` is what the last
-- take answered (0: taken), set by the same statement (queries.sql take_token).
CREATE TABLE rate_buckets (
    project  text             NOT NULL,
    key      text             NOT NULL,
    tat      double precision NOT NULL,
    interval double precision NOT NULL,
    burst    integer          NOT NULL,
    wait     double precision NOT NULL,
    PRIMARY KEY (project, key)
);

-- Concurrency keys: the limit of each key, whose row acquire_slot locks so that two workers
-- taking the last slot of a key one after the other, never both; and the holders of its slots
-- with the time each lapses (a killed worker's slot comes back when its lease would have).
CREATE TABLE concurrency_keys (
    project text    NOT NULL,
    key     text    NOT NULL,
    lim     integer NOT NULL,
    PRIMARY KEY (project, key)
);

CREATE TABLE concurrency_slots (
    project    text             NOT NULL,
    key        text             NOT NULL,
    holder     text             NOT NULL,
    expires_at double precision NOT NULL,
    PRIMARY KEY (project, key, holder)
);

-- A slot under key k for holder h if fewer than lim live holders have one (h already in: its
-- expiry is renewed). Times are seconds since the epoch.
CREATE FUNCTION acquire_slot(
    p text, k text, h text, lim integer, expires double precision, now_s double precision
) RETURNS boolean LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO concurrency_keys AS c (project, key, lim) VALUES (p, k, lim)
    ON CONFLICT (project, key) DO UPDATE SET lim = excluded.lim;
    DELETE FROM concurrency_slots s
    WHERE s.project = p AND s.key = k AND s.expires_at <= now_s;
    IF EXISTS (
        SELECT 1 FROM concurrency_slots s WHERE s.project = p AND s.key = k AND s.holder = h
    ) OR (SELECT count(*) FROM concurrency_slots s WHERE s.project = p AND s.key = k) < lim THEN
        INSERT INTO concurrency_slots AS s (project, key, holder, expires_at)
        VALUES (p, k, h, expires)
        ON CONFLICT (project, key, holder) DO UPDATE SET expires_at = excluded.expires_at;
        RETURN true;
    END IF;
    RETURN false;
END
$$;
