-- API keys move to their own table so a key can be rotated: a game has one
-- current write key and one current read key (expires_at NULL), and any
-- number of previous ones that keep working until their expires_at. A
-- write key is built into game clients already in players' hands, so a
-- rotation usually gives the old key a grace period (until the new build has
-- spread); a leaked key is rotated with no grace and stops at once.
CREATE TABLE game_keys (
    hash       bytea       PRIMARY KEY,          -- SHA-256 of the key (see 0001_games.sql)
    gameid     text        NOT NULL REFERENCES games (id) ON DELETE CASCADE,
    kind       text        NOT NULL CHECK (kind IN ('write', 'read')),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz
);
CREATE INDEX game_keys_game ON game_keys (gameid, kind);

INSERT INTO game_keys (hash, gameid, kind, created_at)
SELECT write_key_hash, id, 'write', created_at FROM games
UNION ALL
SELECT read_key_hash, id, 'read', created_at FROM games;

ALTER TABLE games DROP COLUMN write_key_hash, DROP COLUMN read_key_hash;
