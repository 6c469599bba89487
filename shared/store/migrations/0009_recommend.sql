-- Schema of the recommend function (functions/recommend): what each player
-- did with each item, the item catalogue, per-game settings, and the
-- trained models' pointer rows. The models themselves are objects in S3
-- (models/<game>/<version>/model.bin and metrics.json).
--
-- Interactions are kept as integer counters per (game, player, item) and
-- turned into weights with the game's settings only when a model is trained
-- or a recommendation is served, so a change of weights applies to all
-- history at once, and sums of integers make the counters exact whatever
-- the order of delivery.

-- Event ids recommend has counted, per game. An interaction changes only if
-- its id is new here, in the same transaction. subject lets retain's erasure
-- remove a player's ids; an erased player's events still on their way are
-- refused by the erasures check (0003_erasures.sql), not by this table.
CREATE TABLE recommend_event_ids (
    gameid  text NOT NULL,
    id      text NOT NULL,
    subject text NOT NULL,
    PRIMARY KEY (gameid, id)
);
CREATE INDEX recommend_event_ids_player ON recommend_event_ids (gameid, subject);

-- One row per player recommend has seen: their segment (platform and
-- country of their latest session.start by event time, ties broken by event
-- id, so the outcome does not depend on delivery order). A player's
-- interactions are written only under a lock on this row, which is what
-- retain's erasure locks too.
CREATE TABLE recommend_players (
    gameid     text NOT NULL,
    subject    text NOT NULL,
    platform   text,
    country    text,
    segment_at timestamptz,
    segment_id text,
    PRIMARY KEY (gameid, subject)
);

-- Interactions: counters of the purchases (and their amount_minor, summed
-- over currencies), resource sinks naming the item, and design events the
-- game maps to the item; first_at/last_at are the earliest/latest event time.
CREATE TABLE recommend_interactions (
    gameid       text        NOT NULL,
    subject      text        NOT NULL,
    item_id      text        NOT NULL,
    purchases    bigint      NOT NULL DEFAULT 0,
    amount_minor numeric     NOT NULL DEFAULT 0,
    sinks        bigint      NOT NULL DEFAULT 0,
    views        bigint      NOT NULL DEFAULT 0,
    first_at     timestamptz NOT NULL,
    last_at      timestamptz NOT NULL,
    PRIMARY KEY (gameid, subject, item_id)
);

-- The item catalogue. Items seen in events are added with consumable NULL
-- (unknown: recommend infers it from repeat acquisitions) and available;
-- an admin key's PUT /v1/games/{game}/items sets every field.
CREATE TABLE recommend_items (
    gameid      text        NOT NULL,
    item_id     text        NOT NULL,
    consumable  boolean,
    available   boolean     NOT NULL DEFAULT true,
    tags        text[]      NOT NULL DEFAULT '{}',
    price_minor bigint,
    currency    text,
    from_catalogue boolean  NOT NULL DEFAULT false, -- set by an admin, not only seen in events
    first_seen  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gameid, item_id)
);

-- Per-game settings (interaction weights, design event mapping, history
-- threshold) as JSON over the defaults, and the version every replica
-- compares to know when its cached catalogue and settings are stale: it
-- grows with every admin change of items or settings. training_until is
-- the lease of the training running for the game (one at a time, across
-- replicas and the CLI; a crashed one's lease runs out).
CREATE TABLE recommend_games (
    gameid         text        PRIMARY KEY,
    settings       jsonb       NOT NULL DEFAULT '{}',
    version        bigint      NOT NULL DEFAULT 1,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    training_until timestamptz
);

-- Every training run: its candidates' validation metrics and, when a model
-- was stored, where. recommend_current points at the promoted one.
CREATE TABLE recommend_models (
    gameid     text        NOT NULL,
    version    text        NOT NULL,
    kind       text        NOT NULL,             -- ease, als, knn or popular
    created_at timestamptz NOT NULL DEFAULT now(),
    metrics    jsonb       NOT NULL,
    object_key text,                             -- models/<game>/<version>/model.bin, NULL if not stored
    sha256     text,
    size_bytes bigint,
    promoted   boolean     NOT NULL DEFAULT false,
    reason     text        NOT NULL DEFAULT '',  -- why it was or was not promoted
    PRIMARY KEY (gameid, version)
);

CREATE TABLE recommend_current (
    gameid      text        PRIMARY KEY,
    version     text        NOT NULL,
    promoted_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (gameid, version) REFERENCES recommend_models (gameid, version)
);
