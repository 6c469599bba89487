-- Hourly breakdowns and filters (issue 17): the rollups of rollup_hourly
-- per dimension tuple, for the metrics the report API breaks down, and the
-- distinct players of each UTC hour per tuple with the minutes they were
-- seen in (hourly DAU and concurrency per dimension value, exact). Live
-- traffic writes about as many of these rows as of rollup_tuple_daily and
-- player_day_tuples (a batch's events share their hour as they share
-- their day); a replay of history writes more, one per tuple-hour.
CREATE TABLE rollup_tuple_hourly (
    gameid text        NOT NULL,
    hour   timestamptz NOT NULL,
    metric text        NOT NULL,
    dim    text        NOT NULL DEFAULT '',
    tuple  bigint      NOT NULL,
    value  numeric     NOT NULL,
    PRIMARY KEY (gameid, hour, metric, dim, tuple)
) WITH (fillfactor = 80);

-- One row per player, UTC hour and tuple any of the hour's events carried:
-- paid says a purchase carried it, minutes (bit i = minute i of the hour)
-- the minutes its events fell in. Rows only gain bits (OR), so delivery
-- order and duplicates do not matter.
CREATE TABLE player_hour_tuples (
    gameid  text        NOT NULL,
    hour    timestamptz NOT NULL,
    subject text        NOT NULL,
    tuple   bigint      NOT NULL,
    paid    boolean     NOT NULL DEFAULT false,
    minutes bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (gameid, hour, subject, tuple)
) WITH (fillfactor = 80);
CREATE INDEX player_hour_tuples_player ON player_hour_tuples (gameid, subject);
