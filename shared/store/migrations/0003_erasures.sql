-- Audit of player erasures (retain). One row per erasure request: who asked,
-- when, and how many rows, keys and archived events were removed from each
-- store. It never holds the erased data: the player is recorded only as a
-- SHA-256 of "<gameid>:<player id>", so an auditor who is given the player
-- id can find the proof, but the table alone does not name anyone.
CREATE TABLE erasures (
    gameid        text        NOT NULL,
    request_id    text        NOT NULL,  -- id of the erasure CloudEvent (retries resume the same row)
    player_sha256 text        NOT NULL,
    requested_by  text        NOT NULL,
    requested_at  timestamptz NOT NULL,  -- time of the request event
    started_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz,           -- NULL while unfinished (a crashed run is resumed)
    removed       jsonb       NOT NULL DEFAULT '{}', -- counts per store, e.g. {"postgres.events": 12, "redis.members": 2, "s3.events": 40}
    PRIMARY KEY (gameid, request_id)
);
CREATE INDEX erasures_player ON erasures (gameid, player_sha256);
