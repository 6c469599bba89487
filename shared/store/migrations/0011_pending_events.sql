-- process in two stages (functions/process): a delivery is acknowledged
-- once its event is durable, and aggregation follows in large batches.
--
-- Stage 1 (every delivery batch, one transaction): the raw event in its
-- day partition, its (gameid, id) in event_ids, and one pending_events row
-- per game of the batch holding that game's new events. Stage 2 (the
-- aggregator, inside process's own pods): claims pending rows, merges
-- their events into players, sessions, activity and rollups, and deletes
-- the rows in the same transaction. So every event is in exactly one of
-- two states, durable-and-pending or durable-and-counted, and a crash at
-- any point leaves it in one of them.
--
-- One row per stage-1 batch and game, not per event: the queue costs the
-- database one insert and one delete per batch. `batch` is process's own
-- encoding of the events (functions/process/pending.go; a version byte
-- first), stored uncompressed (EXTERNAL) because the aggregator reads it
-- once, soon, and the database should not spend CPU compressing it.
CREATE TABLE pending_events (
    seq        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- arrival order
    gameid     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),  -- stage 1's transaction start
    events     integer     NOT NULL,                -- how many events batch holds
    day_from   date        NOT NULL,                -- UTC days of its events (their
    day_to     date        NOT NULL,                --   events partitions), for erasure
    batch      bytea       NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);
ALTER TABLE pending_events ALTER COLUMN batch SET STORAGE EXTERNAL;
-- SetTimezone drops a game's pending rows (it replays their events from
-- the events table) and an erasure reads their days.
CREATE INDEX pending_events_game ON pending_events (gameid);

-- Events the aggregator could never count (a fault of the data it cannot
-- retry away; none is known). They are kept, not dropped, with the
-- database's reason, for an operator to look at; the raw events stay in
-- the events table.
CREATE TABLE pending_events_failed (
    seq        bigint      PRIMARY KEY,
    gameid     text        NOT NULL,
    created_at timestamptz NOT NULL,
    failed_at  timestamptz NOT NULL DEFAULT now(),
    reason     text        NOT NULL,
    batch      bytea       NOT NULL
);

-- Aggregation updates the same rollup, player, session and cohort rows
-- again and again (a value, a last-seen time), never a key. With room left
-- on each page those updates are HOT: the new row version goes to the
-- same page and no index changes. New pages keep a fifth free.
ALTER TABLE rollup_daily SET (fillfactor = 80);
ALTER TABLE rollup_hourly SET (fillfactor = 80);
ALTER TABLE rollup_minutely SET (fillfactor = 80);
ALTER TABLE players SET (fillfactor = 80);
ALTER TABLE sessions SET (fillfactor = 80);
ALTER TABLE cohort_days SET (fillfactor = 80);
ALTER TABLE player_spend SET (fillfactor = 80);
ALTER TABLE players_hll_daily SET (fillfactor = 80);
