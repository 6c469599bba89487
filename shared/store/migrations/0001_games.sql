-- Games and their API keys. Keys are random 32-byte secrets, so a SHA-256
-- digest is enough to store them safely (no password-style stretching needed)
-- and lets ingest look a key up by equality.
CREATE TABLE games (
    id             text PRIMARY KEY,
    name           text NOT NULL,
    timezone       text NOT NULL DEFAULT 'UTC',
    write_key_hash bytea NOT NULL UNIQUE,
    read_key_hash  bytea NOT NULL UNIQUE,
    -- raw events kept hot in PostgreSQL, then archived to S3
    hot_days       integer NOT NULL DEFAULT 30 CHECK (hot_days >= 1),
    archive_days   integer NOT NULL DEFAULT 400 CHECK (archive_days >= 1),
    -- events per second; NULL means the deployment's INGEST_RATE_LIMIT
    rate_limit     integer CHECK (rate_limit IS NULL OR rate_limit >= 0),
    created_at     timestamptz NOT NULL DEFAULT now()
);
