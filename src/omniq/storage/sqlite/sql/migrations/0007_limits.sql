-- OmniQ SQLite schema, version 7: rate-limit buckets and concurrency keys (issue 19), shared by
-- every worker of a project. One small record per (kind, key), changed in one transaction:
-- kind 'bucket' (a token bucket, omniq.models.limits.BucketRecord) or 'slots' (the holders of a
-- concurrency key and their expiries, SlotRecord), as JSON.
CREATE TABLE omniq_limits (
    project TEXT NOT NULL,
    kind    TEXT NOT NULL,
    key     TEXT NOT NULL,
    record  BLOB NOT NULL,
    PRIMARY KEY (project, kind, key)
) WITHOUT ROWID;
