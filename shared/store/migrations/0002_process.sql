-- Schema of the process function: raw events, players, sessions, activity
-- and the rollups every report reads. Every aggregate is maintained so that
-- at-least-once, out-of-order and concurrent delivery give exactly the same
-- result as one ordered delivery:
--   * a delivery only counts if its (gameid, id) is new in event_ids;
--   * per-player and per-session state is merged with LEAST/GREATEST, so
--     merging is idempotent and commutative;
--   * rollups derived from mutable state (new players, first-time payers,
--     sessions and their length) are moved with deltas (new contribution
--     minus old contribution) computed under a row lock, so they telescope to
--     the contribution of the final state whatever the order.
-- Numeric sums use numeric, not float, so addition order cannot change a digit.

CREATE EXTENSION IF NOT EXISTS hll;

-- Dedup keys. A primary key on the partitioned events table must include the
-- partition key (day), so it cannot recognise the same id arriving with
-- another time; this table can. It is small (two short keys and a date per
-- event) and is not partitioned, so dedup keeps working after retain drops
-- or restores a day partition. retain may delete a game's old ids with
-- `DELETE FROM event_ids WHERE gameid = $1 AND day < $2` once late duplicates
-- of those days no longer matter.
CREATE TABLE event_ids (
    gameid text NOT NULL,
    id     text NOT NULL,
    day    date NOT NULL,            -- UTC day of the event time (its events partition)
    PRIMARY KEY (gameid, id)
);

-- Raw events, one partition per game and UTC day of the event time
-- (events_<gameid>_<yyyymmdd>), so retain can archive and drop a game's old
-- days without touching other games. Everything needed to rebuild every
-- aggregate and re-export the event as a CloudEvent is kept.
CREATE TABLE events (
    gameid       text        NOT NULL,
    day          date        NOT NULL,   -- UTC day of time
    id           text        NOT NULL,
    type         text        NOT NULL,
    source       text        NOT NULL,
    subject      text        NOT NULL,
    time         timestamptz NOT NULL,
    sessionid    text,
    receivedtime timestamptz,
    data         jsonb,                  -- NULL when the event had no data
    extensions   jsonb,                  -- other CloudEvent extensions, if any
    PRIMARY KEY (gameid, day, id)
) PARTITION BY RANGE (gameid, day);

-- Players. install_day is first_seen's day in the game's time zone.
CREATE TABLE players (
    gameid            text        NOT NULL,
    subject           text        NOT NULL,
    first_seen        timestamptz NOT NULL,
    last_seen         timestamptz NOT NULL,
    install_day       date        NOT NULL,
    first_purchase_at timestamptz,
    sessions          bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (gameid, subject)
);
CREATE INDEX players_install_day ON players (gameid, install_day);

-- Lifetime spend per player and currency (ISO 4217 minor units).
CREATE TABLE player_spend (
    gameid       text    NOT NULL,
    subject      text    NOT NULL,
    currency     text    NOT NULL,
    amount_minor numeric NOT NULL,
    purchases    bigint  NOT NULL,
    PRIMARY KEY (gameid, subject, currency)
);

-- Activity: one row per player per day (game time zone) and per hour (UTC)
-- with any event; paid says the player purchased in that period. DAU,
-- paying players and retention cohorts are exact counts of these rows.
CREATE TABLE player_days (
    gameid  text    NOT NULL,
    day     date    NOT NULL,
    subject text    NOT NULL,
    paid    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (gameid, day, subject)
);
CREATE TABLE player_hours (
    gameid  text        NOT NULL,
    hour    timestamptz NOT NULL,
    subject text        NOT NULL,
    paid    boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (gameid, hour, subject)
);

-- Sessions, identified by (gameid, subject, sessionid). The merged facts are
-- start_at (earliest session.start), first_at/last_at (earliest/latest event
-- of the session), end_at (latest session.end) and end_length_s (largest
-- length_s reported by a session.end). Derived, stored for cheap reports:
--   begin_at = coalesce(start_at, first_at)
--   length_s = end_length_s if a session.end reported one, else
--              greatest(0, last_at - begin_at) in seconds
--   day      = begin_at's day in the game's time zone; hour = its UTC hour.
-- A session is closed when it has a session.end or no event for 30 minutes:
--   end_at IS NOT NULL OR last_at < now() - interval '30 minutes'
-- (a query-time predicate, so it never depends on delivery order).
CREATE TABLE sessions (
    gameid       text        NOT NULL,
    subject      text        NOT NULL,
    sessionid    text        NOT NULL,
    start_at     timestamptz,
    first_at     timestamptz NOT NULL,
    last_at      timestamptz NOT NULL,
    end_at       timestamptz,
    end_length_s numeric,
    platform     text,
    app_version  text,
    country      text,
    begin_at     timestamptz NOT NULL,
    length_s     numeric     NOT NULL,
    day          date        NOT NULL,
    hour         timestamptz NOT NULL,
    PRIMARY KEY (gameid, subject, sessionid)
);
CREATE INDEX sessions_day ON sessions (gameid, day);

-- Rollups: one row per game, period, metric and dimension. Metrics (dim in
-- brackets; '' when there is none):
--   events [type], active_players, new_players, sessions,
--   session_length_sum_s, session_length_count, purchases [currency],
--   revenue_minor [currency], paying_players, first_time_payers,
--   ad_events [action/ad_type], ad_revenue_micros [ad_type], errors [severity],
--   progression_start|progression_complete|progression_fail [level],
--   resource_source|resource_sink [currency] (sum of amounts),
--   design_events [event], design_value_sum [event].
-- rollup_daily.day is in the game's time zone (games.timezone);
-- rollup_hourly.hour is the UTC hour.
CREATE TABLE rollup_daily (
    gameid text    NOT NULL,
    day    date    NOT NULL,
    metric text    NOT NULL,
    dim    text    NOT NULL DEFAULT '',
    value  numeric NOT NULL,
    PRIMARY KEY (gameid, day, metric, dim)
);
CREATE TABLE rollup_hourly (
    gameid text        NOT NULL,
    hour   timestamptz NOT NULL,
    metric text        NOT NULL,
    dim    text        NOT NULL DEFAULT '',
    value  numeric     NOT NULL,
    PRIMARY KEY (gameid, hour, metric, dim)
);

-- Distinct players per game and day (game time zone) as a HyperLogLog
-- (default hll parameters: log2m=11, regwidth=5). Unions over any range give
-- WAU/MAU: exact while a union is in explicit mode (small sets), otherwise
-- a relative standard error of about 1.04/sqrt(2048) = 2.3%.
CREATE TABLE players_hll_daily (
    gameid  text NOT NULL,
    day     date NOT NULL,
    players hll  NOT NULL,
    PRIMARY KEY (gameid, day)
);
