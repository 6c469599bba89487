-- Dimensions (issue 17): every event carries a tuple of platform, country,
-- appversion and the custom dim1..dim3 (shared/events Dims; missing =
-- 'unknown'). process keys breakdown rows by the tuple's id (events.Dims.ID,
-- a hash of its values, so no round trip interns it) and keeps, per single
-- dimension value, the precomputed numbers a report by one dimension reads.
-- Every aggregate here is maintained like those of 0002: new events add,
-- state-derived contributions move by "new minus old" under row locks.

-- The custom values a game keeps per dimension: the first
-- events.MaxCustomValues registered (under the game's aggregate lock, so
-- registration is serialised per game) win; later values count as 'other'.
-- Values are never removed, so an event keeps the value it was counted
-- under, also when a rebuild replays it.
CREATE TABLE dim_values (
    gameid text NOT NULL,
    dim    text NOT NULL,      -- dim1, dim2, dim3
    value  text NOT NULL,
    PRIMARY KEY (gameid, dim, value)
);

-- The tuples a game's rows are keyed by (ids of events.Dims.ID; 0 is the
-- all-unknown tuple of rows written before dimensions existed).
CREATE TABLE dim_tuples (
    gameid     text   NOT NULL,
    tuple      bigint NOT NULL,
    platform   text   NOT NULL,
    country    text   NOT NULL,
    appversion text   NOT NULL,
    dim1       text   NOT NULL,
    dim2       text   NOT NULL,
    dim3       text   NOT NULL,
    PRIMARY KEY (gameid, tuple)
);
INSERT INTO dim_tuples SELECT DISTINCT gameid, 0, 'unknown', 'unknown', 'unknown', 'unknown', 'unknown', 'unknown' FROM players;

-- The rollups of rollup_daily per tuple (filtered queries) and per single
-- dimension value (a breakdown by one dimension without filters reads rows
-- per day and value, whatever the number of tuples), for the metrics the
-- report API breaks down (daily: per hour they would cost a replay of
-- history about a row per event), with
-- only the detail of dim it reads (process's breakdownDim). rollup_dim_daily
-- also holds active_players and paying_players per value: a player counts
-- once per day under every value any of their events of the day carried.
CREATE TABLE rollup_tuple_daily (
    gameid text    NOT NULL,
    day    date    NOT NULL,
    metric text    NOT NULL,
    dim    text    NOT NULL DEFAULT '',
    tuple  bigint  NOT NULL,
    value  numeric NOT NULL,
    PRIMARY KEY (gameid, day, metric, dim, tuple)
) WITH (fillfactor = 80);
CREATE TABLE rollup_dim_daily (
    gameid text    NOT NULL,
    day    date    NOT NULL,
    metric text    NOT NULL,
    dname  text    NOT NULL,   -- platform, country, appversion, dim1..dim3
    dim    text    NOT NULL DEFAULT '',
    dvalue text    NOT NULL,
    value  numeric NOT NULL,
    PRIMARY KEY (gameid, metric, dname, day, dim, dvalue)
) WITH (fillfactor = 80);

-- Distinct players per day and tuple (paid: one of the day's purchases
-- carried it): filtered distinct counts are exact counts of these rows.
CREATE TABLE player_day_tuples (
    gameid  text    NOT NULL,
    day     date    NOT NULL,
    subject text    NOT NULL,
    tuple   bigint  NOT NULL,
    paid    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (gameid, day, subject, tuple)
);
CREATE INDEX player_day_tuples_player ON player_day_tuples (gameid, subject);

-- HyperLogLog of each day's players per dimension value: week and month
-- breakdowns of large games (as players_hll_daily for the totals).
CREATE TABLE players_hll_dim_daily (
    gameid  text NOT NULL,
    day     date NOT NULL,
    dname   text NOT NULL,
    dvalue  text NOT NULL,
    players hll  NOT NULL,
    PRIMARY KEY (gameid, day, dname, dvalue)
) WITH (fillfactor = 80);

-- The tuple of a player's earliest event (install dimensions: new players,
-- cohorts of filtered retention and LTV) and of their first purchase
-- (first-time payers); of a session's earliest event (sessions and their
-- length). Ties at the same instant take the smaller tuple id.
ALTER TABLE players ADD COLUMN tuple bigint NOT NULL DEFAULT 0,
    ADD COLUMN purchase_tuple bigint NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN tuple bigint NOT NULL DEFAULT 0;

-- Concurrency: the minutes (bit i = minute i of the UTC hour) a player had
-- an event in. process counts each minute's online players (an event in
-- that minute or the one before, the live view's two minutes) in
-- rollup_minutely (metric online) from these bits, and keeps the highest
-- per UTC hour and per day of the game's zone (online counts only grow).
ALTER TABLE player_hours ADD COLUMN minutes bigint NOT NULL DEFAULT 0;
CREATE TABLE ccu_hourly (
    gameid text        NOT NULL,
    hour   timestamptz NOT NULL,
    peak   bigint      NOT NULL,
    PRIMARY KEY (gameid, hour)
) WITH (fillfactor = 80);
CREATE TABLE ccu_daily (
    gameid text   NOT NULL,
    day    date   NOT NULL,
    peak   bigint NOT NULL,
    PRIMARY KEY (gameid, day)
) WITH (fillfactor = 80);

-- LTV: each player's revenue per day (game time zone) and currency, and
-- its sum per install cohort and day, moved with the player when their
-- install day moves earlier (as cohort_days).
CREATE TABLE player_revenue_days (
    gameid       text    NOT NULL,
    subject      text    NOT NULL,
    currency     text    NOT NULL,
    day          date    NOT NULL,
    amount_minor numeric NOT NULL,
    PRIMARY KEY (gameid, subject, currency, day)
) WITH (fillfactor = 80);
CREATE TABLE cohort_revenue (
    gameid       text    NOT NULL,
    install_day  date    NOT NULL,
    currency     text    NOT NULL,
    day          date    NOT NULL,
    amount_minor numeric NOT NULL,
    PRIMARY KEY (gameid, install_day, currency, day)
) WITH (fillfactor = 80);
INSERT INTO player_revenue_days (gameid, subject, currency, day, amount_minor)
SELECT e.gameid, e.subject, e.data->>'currency', (e.time AT TIME ZONE g.timezone)::date, sum((e.data->>'amount_minor')::numeric)
FROM events e JOIN games g ON g.id = e.gameid
WHERE e.type = 'com.gamemetrics.purchase'
GROUP BY 1, 2, 3, 4;
INSERT INTO cohort_revenue (gameid, install_day, currency, day, amount_minor)
SELECT r.gameid, p.install_day, r.currency, r.day, sum(r.amount_minor)
FROM player_revenue_days r JOIN players p USING (gameid, subject)
GROUP BY 1, 2, 3, 4;
